// One thread that waits, in epoll, for the descriptors HostSystem cares about — the read ends of
// children's output pipes, the write ends of their input pipes, and their pidfds (readable when
// the child exits) — and resumes whoever waits for them. Nothing here ever blocks a thread of
// Swift's cooperative pool: a waiter suspends, and this thread resumes it.
//
// Registrations are one-shot (EPOLLONESHOT): a descriptor fires once per wait, then is re-armed
// by the next wait. A descriptor is removed from epoll (`forget`) before it is closed, so that a
// recycled descriptor number never inherits a stale registration.
import CHostSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class Reactor: Sendable {
    /// The reactor of this process, started on first use.
    static let shared = Reactor()

    enum Interest: Sendable {
        case readable, writable

        var events: UInt32 {
            switch self {
            case .readable: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
            case .writable: EPOLLOUT.rawValue | EPOLLONESHOT.rawValue
            }
        }
    }

    private struct State {
        /// What to run when a descriptor fires (one-shot).
        var handlers: [Int32: @Sendable (Result<Void, HostSystemError>) -> Void] = [:]
        /// Descriptors added to epoll (re-armed with EPOLL_CTL_MOD).
        var registered: Set<Int32> = []
    }

    private final class Shared: Sendable {
        // Lock order: taken alone; never held while a handler runs.
        let state = Mutex(State())
    }

    private let epoll: Int32
    private let shared = Shared()

    private init() {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epoll >= 0, "epoll_create1 failed: \(String(cString: strerror(errno)))")
        let epoll = self.epoll, shared = self.shared
        let thread = Thread {
            nameCurrentThread("ballast-reactor")
            Reactor.loop(epoll: epoll, shared: shared)
        }
        thread.start()
    }

    /// Runs `handler` (on the reactor thread) once `fd` is ready for `interest`, or at once with
    /// an error when epoll refuses the descriptor. One handler per descriptor at a time.
    func onReady(_ fd: Int32, _ interest: Interest, _ handler: @escaping @Sendable (Result<Void, HostSystemError>) -> Void) {
        let failure: HostSystemError? = shared.state.withLock { state in
            precondition(state.handlers[fd] == nil, "two waits on descriptor \(fd) at once")
            state.handlers[fd] = handler
            var event = epoll_event()
            event.events = interest.events
            event.data.fd = fd
            let operation = state.registered.contains(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
            guard epoll_ctl(epoll, operation, fd, &event) == 0 else {
                state.handlers[fd] = nil
                return .system("epoll_ctl on descriptor \(fd)")
            }
            state.registered.insert(fd)
            return nil
        }
        if let failure { handler(.failure(failure)) }
    }

    /// Resumes the waiter of `fd`, if any, with `CancellationError`. Only its owner may call it,
    /// while the descriptor is open (`OwnedDescriptor`'s wait: a closed number may be another
    /// file's).
    func cancel(_ fd: Int32) {
        let handler = shared.state.withLock { $0.handlers.removeValue(forKey: fd) }
        handler?(.failure(HostSystemError(.cancelled, "the wait for descriptor \(fd) was cancelled")))
    }

    /// Removes `fd` from epoll; call it before closing `fd`. A waiter still there is resumed
    /// with an error.
    func forget(_ fd: Int32) {
        let handler = shared.state.withLock { state -> (@Sendable (Result<Void, HostSystemError>) -> Void)? in
            if state.registered.remove(fd) != nil {
                var event = epoll_event()
                _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event)
            }
            return state.handlers.removeValue(forKey: fd)
        }
        handler?(.failure(HostSystemError(.closed, "descriptor \(fd) was closed while a task waited for it")))
    }

    private static func loop(epoll: Int32, shared: Shared) {
        let capacity = 64
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        while true {
            let count = epoll_wait(epoll, events, Int32(capacity), -1)
            if count < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            for index in 0..<Int(count) {
                let fd = events[index].data.fd
                let handler = shared.state.withLock { $0.handlers.removeValue(forKey: fd) }
                handler?(.success(()))
            }
        }
    }
}
