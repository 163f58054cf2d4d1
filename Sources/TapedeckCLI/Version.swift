/// The version written into every cassette header.
public let tapedeckVersion = "0.1.0"
