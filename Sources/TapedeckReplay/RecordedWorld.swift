import Foundation
import TapedeckCore
import TapedeckSOAP

/// Property values of managed objects as the cassette saw them over time, taken
/// from update sets, property retrievals and `Fetch` responses. The property
/// collector model evaluates filters against it during replay.
final class RecordedWorld: @unchecked Sendable {
    /// One sighting of some of an object's properties.
    struct Observation: Sendable {
        /// Recorded nanoseconds since the cassette started.
        var time: UInt64
        /// Property name to canonical value XML (element `val`); nil means removed.
        var properties: [String: String?]
    }

    struct History {
        var observations: [Observation] = []
        /// When the `*_Task` call that created this task answered, for tasks.
        var createdAt: UInt64?
    }

    private(set) var histories: [ManagedObjectReference: History] = [:]

    /// Operations whose responses carry update sets.
    static let updateOperations: Set<String> = ["WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates"]

    /// Adds what one recorded exchange revealed, in cassette order.
    func add(_ sightings: Sightings) {
        if sightings.sawVCSimVersion { recordedByVCSim = true }
        for (object, observation) in sightings.observations {
            histories[object, default: History()].observations.append(observation)
        }
        if let (task, time) = sightings.createdTask {
            histories[task, default: History()].createdAt = time
        }
    }

    /// True when an update set carried version `-`, which vcsim uses and vCenter
    /// never does; replay then follows vcsim's collector semantics.
    private(set) var recordedByVCSim = false

    /// Sorts each object's observations by time.
    func finish() {
        // Sorting through the values view updates each history in place, without
        // hashing the keys again. The indices are walked by hand, because
        // `histories.indices` would keep a second reference to the storage and make
        // the first update copy the whole dictionary.
        var position = histories.startIndex
        while position != histories.endIndex {
            histories.values[position].observations.sort { $0.time < $1.time }
            histories.formIndex(after: &position)
        }
    }

    func history(of reference: ManagedObjectReference) -> History? {
        histories[reference]
    }
}

/// Helpers for `TaskInfo` values in canonical XML.
enum TaskInfoState {
    static let terminal = ["success", "error"]

    /// Returns the state (`queued`, `running`, `success`, `error`) of a TaskInfo.
    static func state(of info: String) -> String? {
        guard let start = info.range(of: "<state>"), let end = info.range(of: "</state>", range: start.upperBound..<info.endIndex) else {
            return nil
        }
        return String(info[start.upperBound..<end.lowerBound])
    }

}
