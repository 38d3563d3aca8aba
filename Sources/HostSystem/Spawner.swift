// posix_spawn for `ChildProcess`: resolves the executable, prepares the child's descriptors
// (pipes, files opened here so that errors name them, /dev/null), resets its signals, and
// starts it, optionally in a new session. Every descriptor this process opens is close-on-exec,
// and the child closes anything else it inherited above 2, so a child never holds another
// child's pipe open (which would keep that pipe from ever reaching end of file).
import Foundation
import CHostSystem
#if canImport(Glibc)
import Glibc
#endif

struct Spawner {
    let arguments: [String]
    let environment: [String: String]?
    let workingDirectory: String?
    let newSession: Bool
    let input: ChildProcess.Input
    let output: ChildProcess.Output
    let error: ChildProcess.Output

    struct Spawned {
        var pid: pid_t
        /// The parent's ends, non-blocking.
        var stdin: Int32?
        var stdout: Int32?
        var stderr: Int32?
    }

    /// The default search path when the environment has no PATH (as execvp uses, with sbin).
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The executable `name` names: itself when it holds a '/', else the first executable file of
    /// that name in `searchPath`.
    static func resolve(_ name: String, searchPath: String) -> String? {
        if name.contains("/") { return name }
        for directory in searchPath.split(separator: ":") where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0, !FileManager.default.isDirectory(candidate) { return candidate }
        }
        return nil
    }

    func spawn() throws(HostSystemError) -> Spawned {
        guard let name = arguments.first, !name.isEmpty else {
            throw HostSystemError(.invalidArgument, "a child process needs an argv with the executable first; got \(arguments)")
        }
        if case .sameAsOutput = output {
            throw HostSystemError(.invalidArgument, "standardOutput cannot be .sameAsOutput; only standardError can follow stdout")
        }
        let environment = self.environment ?? ProcessInfo.processInfo.environment
        guard let executable = Self.resolve(name, searchPath: environment["PATH"] ?? Self.defaultPath) else {
            throw HostSystemError(.notFound, "cannot start \(name): no executable of that name in PATH \(environment["PATH"] ?? Self.defaultPath)")
        }

        // Descriptors to close in this process once the child has them (or on failure), and
        // the parent's ends to keep.
        var childEnds: [Int32] = []
        var parentEnds: [Int32] = []
        var spawned = Spawned(pid: 0)
        defer { childEnds.forEach { _ = close($0) } }
        func failing(_ error: HostSystemError) -> HostSystemError {
            parentEnds.forEach { _ = close($0) }
            return error
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        /// Makes a pipe; returns (child end, parent end) and records both.
        func pipe(childReads: Bool) throws(HostSystemError) -> (child: Int32, parent: Int32) {
            var fds: [Int32] = [-1, -1]
            guard chs_pipe_cloexec(&fds) == 0 else { throw failing(.system("create a pipe")) }
            let (child, parent) = childReads ? (fds[0], fds[1]) : (fds[1], fds[0])
            childEnds.append(child)
            parentEnds.append(parent)
            _ = fcntl(parent, F_SETFL, fcntl(parent, F_GETFL) | O_NONBLOCK)
            return (child, parent)
        }

        /// Opens `path` here (so that an error names it) and gives it to the child as `target`.
        /// O_NOCTTY: a terminal opened for a child (the kubelet's exec) must never become the
        /// controlling terminal of this process when it leads a session, or its hangup would
        /// SIGHUP this process.
        func open(_ path: String, _ flags: Int32, mode: mode_t, as target: Int32, purpose: String) throws(HostSystemError) {
            let fd = Glibc.open(path, flags | O_CLOEXEC | O_NOCTTY, mode)
            guard fd >= 0 else { throw failing(.system("open \(path) for the \(purpose) of \(name)")) }
            childEnds.append(fd)
            posix_spawn_file_actions_adddup2(&actions, fd, target)
        }

        switch input {
        case .null: try open("/dev/null", O_RDONLY, mode: 0, as: 0, purpose: "stdin")
        case .inherit: break
        case .file(let path): try open(path, O_RDONLY, mode: 0, as: 0, purpose: "stdin")
        case .bytes, .pipe:
            let (child, parent) = try pipe(childReads: true)
            posix_spawn_file_actions_adddup2(&actions, child, 0)
            spawned.stdin = parent
        }
        for (target, destination) in [(Int32(1), output), (Int32(2), error)] {
            let purpose = target == 1 ? "stdout" : "stderr"
            switch destination {
            case .discard: try open("/dev/null", O_WRONLY, mode: 0, as: target, purpose: purpose)
            case .inherit: break
            case .file(let path, let append, let mode):
                try open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), mode: mode, as: target, purpose: purpose)
            case .stream:
                let (child, parent) = try pipe(childReads: false)
                posix_spawn_file_actions_adddup2(&actions, child, target)
                if target == 1 { spawned.stdout = parent } else { spawned.stderr = parent }
            case .sameAsOutput:
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
        }
        _ = chs_spawn_addclosefrom(&actions, 3)
        if let workingDirectory {
            // After the opens: relative output paths are relative to this process's directory.
            let result = chs_spawn_addchdir(&actions, workingDirectory)
            guard result == 0 else { throw failing(.system("set the working directory \(workingDirectory) of \(name)", errno: result)) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        sigdelset(&allSignals, SIGKILL)
        sigdelset(&allSignals, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= chs_spawn_setsid_flag() }
        posix_spawnattr_setflags(&attributes, flags)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        var result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        // A file written a moment ago (a script, a plugin) can still be open for writing in a
        // child that another thread of this process is starting: until that child has exec'd,
        // exec of the file fails with ETXTBSY. The window is short; retry a bounded number of
        // times, yielding the CPU in between, rather than fail the start.
        var attempts = 1
        while result == ETXTBSY && attempts < 500 {
            sched_yield()
            result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            attempts += 1
        }
        guard result == 0 else {
            let code: HostSystemError.Code = result == ENOENT ? .notFound : .spawnFailed
            throw failing(HostSystemError(code, "cannot start \(executable)\(workingDirectory.map { " in \($0)" } ?? ""): \(String(cString: strerror(result)))", errno: result))
        }
        spawned.pid = pid
        return spawned
    }
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
