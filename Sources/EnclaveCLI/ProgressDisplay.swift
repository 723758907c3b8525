import Enclave
import Foundation

/// Draws progress: a bar redrawn in place on a terminal, a line per tenth otherwise.
final class ProgressDisplay: Sendable {
    /// The last tenth reported as a line; the lock also keeps concurrent updates' output whole.
    private let lastTenth = Locked(-1)
    private let terminal = isatty(STDOUT_FILENO) == 1
    private let label: String

    init(_ label: String) { self.label = label }

    func update(finished: Int, failed: Int, total: Int, elapsed: Duration) {
        lastTenth.withLock { lastTenth in draw(finished, failed, total, elapsed, &lastTenth) }
    }

    private func draw(_ finished: Int, _ failed: Int, _ total: Int, _ elapsed: Duration, _ lastTenth: inout Int) {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(finished) / seconds : 0
        let eta = rate > 0 ? Double(total - finished) / rate : 0
        if terminal {
            let width = 30
            let filled = total > 0 ? width * finished / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(
                format: "\r%@ [%@] %d/%d, %d failed, %.0f/s, ETA %.0fs ", label, bar, finished, total, failed, rate, eta
            )
            FileHandle.standardOutput.write(Data(line.utf8))
            if finished == total { FileHandle.standardOutput.write(Data("\n".utf8)) }
        } else {
            let tenth = total > 0 ? finished * 10 / total : 10
            if tenth != lastTenth {
                lastTenth = tenth
                print(String(format: "%@: %d/%d tenants, %d failed, %.0f/s", label, finished, total, failed, rate))
            }
        }
    }
}
