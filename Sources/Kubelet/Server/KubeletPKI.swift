// The kubelet's serving certificate: self-signed (ECDSA P-256, one year, SANs the node IP and
// name), made on first start under `<root>/pki`, as a kubelet without a CA-issued serving
// certificate does. The API server does not verify it (Kubernetes' default without
// --kubelet-certificate-authority); the kubelet verifies the API server's token instead.
import Crypto
import Foundation
import HTTPKit
import SwiftASN1
import X509

enum KubeletPKI {
    /// (certificate PEM, key PEM) at `directory`, created or renewed (under 30 days left).
    static func loadOrCreate(directory: String, nodeName: String, nodeIP: String, now: Date = Date()) throws -> (String, String) {
        try SecretFiles.makePrivateDirectory(directory)
        let certPath = directory + "/kubelet.crt", keyPath = directory + "/kubelet.key"
        if let certPEM = try? String(contentsOfFile: certPath, encoding: .utf8),
           let keyData = try SecretFiles.read(keyPath),
           let cert = try? Certificate(pemEncoded: certPEM), cert.notValidAfter > now.addingTimeInterval(30 * 86400) {
            return (certPEM, String(decoding: keyData, as: UTF8.self))
        }
        let key = P256.Signing.PrivateKey()
        let privateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName("\(nodeName)@kubelet") }
        var names: [GeneralName] = [.dnsName(nodeName), .dnsName("localhost")]
        let octets = nodeIP.split(separator: ".").compactMap { UInt8($0) }
        if octets.count == 4 { names.append(.ipAddress(ASN1OctetString(contentBytes: octets[...]))) }
        let cert = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: privateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: privateKey)
        let certPEM = try cert.serializeAsPEM().pemString
        try SecretFiles.write(keyPath, text: key.pemRepresentation, mode: 0o600)
        try SecretFiles.write(certPath, text: certPEM, mode: 0o644)
        return (certPEM, key.pemRepresentation)
    }
}
