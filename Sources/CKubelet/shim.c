#define _GNU_SOURCE
#include "CKubelet.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

int ckl_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int ckl_open_pty(char *slave_path, size_t length) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave_path, length) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}

int ckl_set_window_size(int fd, unsigned short columns, unsigned short rows) {
    struct winsize size;
    memset(&size, 0, sizeof size);
    size.ws_col = columns;
    size.ws_row = rows;
    return ioctl(fd, TIOCSWINSZ, &size);
}

int ckl_make_whiteout(const char *path) {
    return mknod(path, S_IFCHR | 0000, makedev(0, 0));
}

unsigned long long ckl_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
unsigned int ckl_major(unsigned long long device) { return major(device); }
unsigned int ckl_minor(unsigned long long device) { return minor(device); }

int ckl_mount_fs(const char *fstype, const char *target, const char *data, int nosuid_nodev) {
    unsigned long flags = nosuid_nodev ? (MS_NOSUID | MS_NODEV) : 0;
    return mount(fstype, target, fstype, flags, data);
}

int ckl_bind_mount(const char *source, const char *target, int recursive, int readonly) {
    unsigned long flags = MS_BIND | (recursive ? MS_REC : 0);
    if (mount(source, target, NULL, flags, NULL) != 0) return -1;
    if (readonly && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        int saved = errno;
        umount2(target, UMOUNT_NOFOLLOW | MNT_DETACH);
        errno = saved;
        return -1;
    }
    return 0;
}

int ckl_unmount(const char *target, int detach) {
    return umount2(target, UMOUNT_NOFOLLOW | (detach ? MNT_DETACH : 0));
}

int ckl_make_private(const char *target) {
    return mount(NULL, target, NULL, MS_PRIVATE | MS_REC, NULL);
}

int ckl_make_opaque(const char *path) {
    return setxattr(path, "trusted.overlay.opaque", "y", 1, 0);
}

int ckl_is_nsfs(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return info.f_type == 0x6e736673 ? 1 : 0;  /* NSFS_MAGIC */
}

/* <linux/fs.h>'s, which cannot be included beside <sys/mount.h>. */
#define CKL_FS_IOC_GETFLAGS _IOR('f', 1, long)
#define CKL_FS_IOC_SETFLAGS _IOW('f', 2, long)
#define CKL_FS_TOPDIR_FL 0x00020000

int ckl_mark_top_directory(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int flags = 0;   /* the file systems read and write an int, whatever the macro says */
    int result = ioctl(fd, CKL_FS_IOC_GETFLAGS, &flags);
    if (result == 0 && !(flags & CKL_FS_TOPDIR_FL)) {
        flags |= CKL_FS_TOPDIR_FL;
        result = ioctl(fd, CKL_FS_IOC_SETFLAGS, &flags);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}
