import Foundation
import TapedeckCore
import TapedeckSOAP

/// Facts that one exchange shows about tasks, filters and waits.
struct WireFacts {
    enum Event {
        case taskCreated(task: String)
        case filterCreated(collector: String, filter: String?, tasks: [String])
        case filterDestroyed(filter: String)
        case collectorDestroyed(collector: String)
        case wait(collector: String, versionIn: String, versionOut: String?, changed: Bool)
        case poll(task: String)
        case other
    }

    var sequence: Int
    var session: String?
    var start: UInt64
    /// When the response started, or when the exchange was given up; nil while pending.
    var end: UInt64?
    var answered: Bool
    var fault: String?
    var operation: String
    var event: Event
    /// Tasks this response reports in a final state (`success` or `error`).
    var finalTasks: [String]

    static let waitOperations: Set<String> = ["WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates"]

    /// Reads an exchange; nil for requests that are not SOAP.
    init?(_ exchange: Exchange) {
        guard let request = try? SOAPEnvelope.bodyElement(of: exchange.request.body.data) else { return nil }
        sequence = exchange.sequence
        session = exchange.session
        start = exchange.timing.requestStart
        end = exchange.timing.responseStart ?? exchange.unanswered?.at
        answered = exchange.response != nil
        operation = request.localName
        let this = request.firstChild(named: "_this")?.text ?? ""
        let responseBody = exchange.response?.body.data ?? Data()
        let response = responseBody.isEmpty ? nil : try? SOAPEnvelope.bodyElement(of: responseBody)
        if response?.localName == "Fault" {
            fault = SOAPEnvelope.faultType(of: responseBody) ?? "SOAPFault"
        } else if let status = exchange.response?.status, status >= 400 {
            fault = "HTTP \(status)"
        } else {
            fault = nil
        }
        finalTasks = response.map(WireFacts.finalTasks(in:)) ?? []
        let returnValue = fault == nil ? response?.firstChild(named: "returnval") : nil

        switch operation {
        case _ where operation.hasSuffix("_Task"):
            event = returnValue?.attribute("type") == "Task" ? .taskCreated(task: returnValue!.text) : .other
        case "CreateFilter":
            let objects = request.firstChild(named: "spec")?.children.filter { $0.localName == "objectSet" } ?? []
            let tasks = objects.compactMap { $0.firstChild(named: "obj") }.filter { $0.attribute("type") == "Task" }.map(\.text)
            event = .filterCreated(collector: this, filter: returnValue?.text, tasks: tasks)
        case "DestroyPropertyFilter":
            event = .filterDestroyed(filter: this)
        case "DestroyPropertyCollector":
            event = .collectorDestroyed(collector: this)
        case _ where WireFacts.waitOperations.contains(operation):
            let updateSet = returnValue
            event = .wait(
                collector: this, versionIn: request.firstChild(named: "version")?.text ?? "",
                versionOut: updateSet?.firstChild(named: "version")?.text,
                changed: updateSet?.firstChild(named: "filterSet") != nil)
        case "Fetch", "RetrievePropertiesEx", "RetrieveProperties":
            event = request.firstChild(named: "_this")?.attribute("type") == "Task" ? .poll(task: this) : .other
            if case .other = event, let task = finalTasks.first { event = .poll(task: task) }
        default:
            event = .other
        }
    }

    /// Tasks whose final state a response carries, in any of the shapes clients
    /// ask for: `info`, `info.state`, a Fetch of `info`, or retrieved properties.
    static func finalTasks(in element: XMLElement) -> [String] {
        var tasks: [String] = []
        element.walk { node in
            guard let object = node.firstChild(named: "obj"), object.attribute("type") == "Task" else { return }
            for change in node.children where ["changeSet", "propSet"].contains(change.localName) {
                let name = change.firstChild(named: "name")?.text ?? ""
                guard name == "info" || name == "info.state", let value = change.firstChild(named: "val") else { continue }
                let state = name == "info" ? value.firstChild(named: "state")?.text : value.text
                if state == "success" || state == "error" { tasks.append(object.text) }
            }
        }
        if tasks.isEmpty, let value = element.firstChild(named: "returnval"),
           let state = value.firstChild(named: "state")?.text, state == "success" || state == "error",
           let task = value.firstChild(named: "task"), task.attribute("type") == "Task" {
            tasks.append(task.text)
        }
        return tasks
    }
}
