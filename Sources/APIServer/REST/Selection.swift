import ClusterAPI

/// The label and field selectors of a list or watch, applied to JSON objects.
public struct Selection: Sendable {
    public var labels: LabelSelector
    public var fields: FieldSelector
    public let resource: ResourceInfo

    public init(resource: ResourceInfo, labelSelector: String?, fieldSelector: String?) throws(APIError) {
        self.resource = resource
        do {
            labels = try LabelSelector(parsing: labelSelector ?? "")
        } catch {
            throw APIError.badRequest("unable to parse requirement: \(error.message)")
        }
        do {
            fields = try FieldSelector(parsing: fieldSelector ?? "")
        } catch {
            throw APIError.badRequest(error.message)
        }
        for requirement in fields.requirements
        where !["metadata.name", "metadata.namespace"].contains(requirement.field) && !resource.selectableFields.contains(requirement.field) {
            throw APIError.badRequest("field label not supported: \(requirement.field)")
        }
    }

    public var isEverything: Bool { labels.isEmpty && fields.isEmpty }

    public func matches(_ object: JSONValue) -> Bool {
        if !labels.isEmpty {
            var labelMap: [String: String] = [:]
            for (k, v) in object["metadata"]?["labels"]?.objectValue ?? [:] { labelMap[k] = v.stringValue ?? "" }
            if !labels.matches(labelMap) { return false }
        }
        if !fields.isEmpty {
            return fields.matches { Self.fieldValue(object, $0) }
        }
        return true
    }

    /// The value of a selectable field, as Kubernetes' field sets render it.
    static func fieldValue(_ object: JSONValue, _ field: String) -> String? {
        if field == "source" {  // events: the reporting component
            return object["source"]?["component"]?.stringValue
        }
        if field == "status.successful" {  // jobs: the count of succeeded pods
            return String(object["status"]?["succeeded"]?.int64Value ?? 0)
        }
        var node: JSONValue? = object
        for part in field.split(separator: ".") { node = node?[String(part)] }
        switch node {
        case .string(let s)?: return s
        case .bool(let b)?: return b ? "true" : "false"
        case .integer(let i)?: return String(i)
        case .number(let d)?: return String(d)
        default:
            if ["spec.hostNetwork", "spec.unschedulable"].contains(field) { return "false" }
            return nil
        }
    }
}
