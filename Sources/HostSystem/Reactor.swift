// One thread that waits, in epoll, for the descriptors HostSystem cares about — the read ends of
// children's output pipes, the write ends of their input pipes, and their pidfds (readable when
// the child exits) — and resumes whoever waits for them. Nothing here ever blocks a thread of
// Swift's cooperative pool: a waiter suspends, and this thread resumes it.
//
// Registrations are one-shot (EPOLLONESHOT): a descriptor fires once per wait, then is re-armed
// by the next wait. A descriptor is removed from epoll (`forget`) before it is closed, so that a
// recycled descriptor number never inherits a stale registration; and each wait has a generation,
// carried in the epoll event beside the number, so that an event epoll_wait returned for a closed
// descriptor never runs the handler of a wait on a new descriptor that got its number meanwhile.
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

    typealias Handler = @Sendable (Result<Void, HostSystemError>) -> Void

    private struct Wait {
        var generation: UInt32
        var handler: Handler
    }

    private struct State {
        /// What to run when a descriptor fires (one-shot), with the generation of its wait.
        var waits: [Int32: Wait] = [:]
        var nextGeneration: UInt32 = 0
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
    func onReady(_ fd: Int32, _ interest: Interest, _ handler: @escaping Handler) {
        let failure: HostSystemError? = shared.state.withLock { state in
            precondition(state.waits[fd] == nil, "two waits on descriptor \(fd) at once")
            state.nextGeneration &+= 1
            state.waits[fd] = Wait(generation: state.nextGeneration, handler: handler)
            var event = epoll_event()
            event.events = interest.events
            event.data.u64 = Self.eventData(fd: fd, generation: state.nextGeneration)
            let operation = state.registered.contains(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
            guard epoll_ctl(epoll, operation, fd, &event) == 0 else {
                state.waits[fd] = nil
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
        let handler = shared.state.withLock { $0.waits.removeValue(forKey: fd)?.handler }
        handler?(.failure(HostSystemError(.cancelled, "the wait for descriptor \(fd) was cancelled")))
    }

    /// Removes `fd` from epoll; call it before closing `fd`. A waiter still there is resumed
    /// with an error.
    func forget(_ fd: Int32) {
        let handler = shared.state.withLock { state -> Handler? in
            if state.registered.remove(fd) != nil {
                var event = epoll_event()
                _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, &event)
            }
            return state.waits.removeValue(forKey: fd)?.handler
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
                let (fd, generation) = eventSource(events[index].data.u64)
                let handler = shared.state.withLock { state -> Handler? in
                    guard state.waits[fd]?.generation == generation else { return nil }   // a wait that is gone
                    return state.waits.removeValue(forKey: fd)?.handler
                }
                handler?(.success(()))
            }
        }
    }

    /// An epoll event's data: the wait's generation above the descriptor's number.
    static func eventData(fd: Int32, generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    static func eventSource(_ data: UInt64) -> (fd: Int32, generation: UInt32) {
        (Int32(bitPattern: UInt32(truncatingIfNeeded: data)), UInt32(truncatingIfNeeded: data >> 32))
    }
}
