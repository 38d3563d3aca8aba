import Crypto
import Foundation
import HTTPKit
import SwiftASN1
import X509

// Files under DATA_DIR/pki (PEM, keys mode 0600):
//
//   ca.crt, ca.key               the cluster CA (ECDSA P-256, 10 years); clients trust ca.crt
//   apiserver.crt, apiserver.key the serving certificate, signed by the CA, SANs
//                                127.0.0.1 and localhost (plus the bind address); renewed
//                                when it has under 30 days left or lacks a SAN

/// The API server's certificate authority and serving certificate, created on first start.
public struct PKI: Sendable {
    public let caCertificatePEM: String
    public let servingCertificatePEM: String
    public let servingKeyPEM: String

    public enum Failure: Error, CustomStringConvertible {
        case unreadable(String, String)
        public var description: String {
            switch self {
            case .unreadable(let path, let reason): return "PKI file \(path): \(reason); delete the pki directory to generate a new CA"
            }
        }
    }

    /// Loads the PKI from `directory`, creating whatever is missing.
    public static func loadOrCreate(directory: String, ipAddresses: [String] = ["127.0.0.1"],
                                    dnsNames: [String] = ["localhost"], now: Date = Date()) throws -> PKI {
        try SecretFiles.makePrivateDirectory(directory)
        let caCertPath = directory + "/ca.crt", caKeyPath = directory + "/ca.key"
        let certPath = directory + "/apiserver.crt", keyPath = directory + "/apiserver.key"
        let caKey: P256.Signing.PrivateKey
        let caCert: Certificate
        // Keys are read only when private to their owner (SecretFiles.read throws otherwise):
        // an exposed CA key is a reason to stop, not to regenerate silently.
        if let keyData = try SecretFiles.read(caKeyPath), let certPEM = try? String(contentsOfFile: caCertPath, encoding: .utf8) {
            let keyPEM = String(decoding: keyData, as: UTF8.self)
            do {
                caKey = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
                caCert = try Certificate(pemEncoded: certPEM)
            } catch {
                throw Failure.unreadable(caCertPath, "\(error)")
            }
        } else {
            caKey = P256.Signing.PrivateKey()
            let name = try DistinguishedName { CommonName("ballast-ca") }
            let key = Certificate.PrivateKey(caKey)
            caCert = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                    Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                    SubjectKeyIdentifier(hash: key.publicKey)
                },
                issuerPrivateKey: key)
            try writeAtomically(caKeyPath, caKey.pemRepresentation, mode: 0o600)
            try writeAtomically(caCertPath, try caCert.serializeAsPEM().pemString, mode: 0o644)
            // A new CA invalidates the old serving certificate.
            try? FileManager.default.removeItem(atPath: certPath)
        }
        if let certPEM = try? String(contentsOfFile: certPath, encoding: .utf8),
           let keyPEM = try SecretFiles.read(keyPath).map({ String(decoding: $0, as: UTF8.self) }),
           let cert = try? Certificate(pemEncoded: certPEM),
           cert.notValidAfter > now.addingTimeInterval(30 * 86400),
           cert.issuer == caCert.subject,
           coversNames(cert, ipAddresses: ipAddresses, dnsNames: dnsNames) {
            return PKI(caCertificatePEM: try caCert.serializeAsPEM().pemString, servingCertificatePEM: certPEM, servingKeyPEM: keyPEM)
        }
        let servingKey = P256.Signing.PrivateKey()
        let publicKey = Certificate.PrivateKey(servingKey).publicKey
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for ip in ipAddresses { if let bytes = ipv4Bytes(ip) { names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...]))) } }
        let cert = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: caCert.subject, subject: try DistinguishedName { CommonName("ballast-apiserver") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))
        let certPEM = try cert.serializeAsPEM().pemString
        try writeAtomically(keyPath, servingKey.pemRepresentation, mode: 0o600)
        try writeAtomically(certPath, certPEM, mode: 0o644)
        return PKI(caCertificatePEM: try caCert.serializeAsPEM().pemString, servingCertificatePEM: certPEM,
                   servingKeyPEM: servingKey.pemRepresentation)
    }

    static func coversNames(_ cert: Certificate, ipAddresses: [String], dnsNames: [String]) -> Bool {
        guard let san = try? cert.extensions.subjectAlternativeNames else { return false }
        let present = Array(san)
        for dns in dnsNames where !present.contains(.dnsName(dns)) { return false }
        for ip in ipAddresses {
            guard let bytes = ipv4Bytes(ip) else { continue }
            if !present.contains(.ipAddress(ASN1OctetString(contentBytes: bytes[...]))) { return false }
        }
        return true
    }

    static func ipv4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".")
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }
}

/// Writes a file atomically with its final mode from the start (`SecretFiles.write`).
func writeAtomically(_ path: String, _ text: String, mode: mode_t) throws {
    try SecretFiles.write(path, text: text, mode: mode)
}
