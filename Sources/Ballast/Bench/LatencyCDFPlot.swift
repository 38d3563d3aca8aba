// The `--plot` SVG of the benchmarks that measure a path beside its floor (`bench controllers`,
// `bench kubelet`): one panel per measurement, the cumulative distribution of the measured
// latencies (solid) against the floor's (dashed), on a shared millisecond axis per panel.

enum LatencyCDFPlot {
    /// `panels`: a title, the measured latencies and the floor's, in seconds; `measured` and
    /// `floor` name the two curves in each panel's legend.
    static func svg(_ panels: [(title: String, measured: [Double], floor: [Double])], measured: String, floor: String) -> String {
        let width = 420.0, height = 300.0, margin = 50.0
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width * Double(panels.count)))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (index, panel) in panels.enumerated() {
            let x0 = Double(index) * width + margin, y0 = height - margin, plotWidth = width - margin - 20, plotHeight = height - 2 * margin
            let maxValue = max((panel.measured + panel.floor).max() ?? 1, 0.001)
            out += "<text x=\"\(x0)\" y=\"20\" font-weight=\"bold\">\(panel.title)</text>\n"
            out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0 + plotWidth)\" y2=\"\(y0)\" stroke=\"black\"/>\n"
            out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0)\" y2=\"\(y0 - plotHeight)\" stroke=\"black\"/>\n"
            for tick in 0...4 {
                let value = maxValue * Double(tick) / 4
                let x = x0 + plotWidth * Double(tick) / 4
                out += "<text x=\"\(x - 10)\" y=\"\(y0 + 15)\">\(fixed(value * 1000, 0))</text>\n"
                let y = y0 - plotHeight * Double(tick) / 4
                out += "<text x=\"\(x0 - 35)\" y=\"\(y + 4)\">\(fixed(Double(tick) / 4, 2))</text>\n"
            }
            out += "<text x=\"\(x0 + plotWidth / 2 - 30)\" y=\"\(y0 + 32)\">latency (ms)</text>\n"
            for (values, color, dash, label, row) in [(panel.measured, "#1f77b4", "", measured, 0), (panel.floor, "#d62728", "6,4", floor, 1)] {
                let sorted = values.sorted()
                guard !sorted.isEmpty else { continue }
                var points: [String] = []
                for (rank, value) in sorted.enumerated() {
                    let x = x0 + plotWidth * value / maxValue
                    let y = y0 - plotHeight * Double(rank + 1) / Double(sorted.count)
                    points.append("\(fixed(x, 1)),\(fixed(y, 1))")
                }
                // No stroke-dasharray at all for a solid line: an empty one is invalid SVG.
                let dashes = dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\""
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dashes) points=\"\(points.joined(separator: " "))\"/>\n"
                out += "<text x=\"\(x0 + plotWidth - 110)\" y=\"\(y0 - plotHeight + 14 * Double(row))\" fill=\"\(color)\">\(label)</text>\n"
            }
        }
        return out + "</svg>\n"
    }
}
