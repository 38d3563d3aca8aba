// The directories in which the kubelet and its shims make a directory per pod and per
// container (`pods`, `containers`, the runtime's state, the pod log directory) are marked as
// tops of hierarchies for ext4's Orlov allocator (`chattr +T`). Each new pod or container
// directory then goes to a block group with many free inodes and few directories, and the files
// made in it follow, instead of all landing in the parent's group. Why it matters: on ext4
// without a journal, allocating an inode skips every inode of its group freed in the last 60 s
// (6 min while the inode table block is dirty), one buffer lookup each, scanning from the
// group's start on every allocation; a group where containers, overlayfs' own probes and other
// programs' files were recently deleted makes every new file cost hundreds of those lookups
// (docs/kubelet-bench.md: without the mark, inode allocation was half the kubelet's CPU and most
// of the shim's in a pod burst). Other file systems do not have the flag: nothing to do there.
import CKubelet
import Foundation
import Logging

public enum TopDirectories {
    /// Marks each of `paths` (existing directories); a file system without the flag is left as
    /// it is (debug log), since the mark only places new directories.
    public static func mark(_ paths: [String], logger: Logger) {
        for path in paths where ckl_mark_top_directory(path) != 0 {
            logger.debug("directory not marked for spreading (chattr +T)", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
        }
    }
}
