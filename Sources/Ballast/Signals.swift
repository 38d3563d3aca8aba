import Foundation
import Logging

/// Calls `stop` (on a dispatch queue) when SIGTERM or SIGINT arrives, instead of dying: every
/// long-running subcommand stops cleanly on them. Keep the returned value alive while serving;
/// dropping it (or calling `cancel()`) stops listening.
struct StopSignals {
    private let sources: [DispatchSourceSignal]

    init(logger: Logger, _ stop: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                logger.info("stopping", metadata: ["signal": "\(number == SIGTERM ? "SIGTERM" : "SIGINT")"])
                stop()
            }
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}
