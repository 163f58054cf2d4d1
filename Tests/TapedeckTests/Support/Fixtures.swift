import Foundation
import TapedeckCore

/// Builders for exchanges and envelopes used by the unit tests.
enum Fixtures {
    static func envelope(_ body: String, header: String = "") -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Header>\(header)</soapenv:Header><soapenv:Body>\(body)</soapenv:Body></soapenv:Envelope>
        """
    }

    static func exchange(
        sequence: Int = 1, operation: String? = nil, requestBody: String = "", responseBody: String = "",
        requestHeaders: [Header] = [], responseHeaders: [Header] = [], path: String = "/sdk", method: String = "POST",
        status: Int = 200
    ) -> Exchange {
        Exchange(
            sequence: sequence, connection: 1,
            timing: Timing(requestStart: UInt64(sequence) * 1000, requestEnd: UInt64(sequence) * 1000 + 10,
                           responseStart: UInt64(sequence) * 1000 + 20, responseEnd: UInt64(sequence) * 1000 + 30),
            request: Request(method: method, path: path, headers: requestHeaders, body: Body(Data(requestBody.utf8))),
            response: Response(status: status, headers: responseHeaders, body: Body(Data(responseBody.utf8))),
            soap: operation.map { SOAPCall(operation: $0) })
    }

    /// A fresh directory under the system temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tapedeck-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A password nobody could guess or find in a file, made anew for each run so
    /// that no test fixture ever contains it.
    static func distinctivePassword() -> String {
        "Td-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20) + "!x"
    }
}
