// The `--plot` SVGs of the benchmarks: latency CDFs of a path beside its floor (`bench
// controllers`, `bench kubelet`, `bench e2e`): one panel per measurement, the cumulative
// distribution of the measured latencies (solid) against the floor's (dashed), on a millisecond
// axis per panel; and counts over time (`bench scheduler`, `bench e2e`): how many things had
// happened by each moment of a run, one line per series.

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

    /// Several latency CDFs on one axis (stages of one path, say): a colour per series, the
    /// `dashed` ones (a floor) drawn dashed.
    static func overlaid(title: String, series: [(label: String, values: [Double], dashed: Bool)]) -> String {
        let width = 720.0, height = 400.0, margin = 50.0, legend = 150.0
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#d62728"]
        let maxValue = max(series.flatMap(\.values).max() ?? 1, 0.001)
        let x0 = margin, y0 = height - margin, plotWidth = width - margin - legend, plotHeight = height - 2 * margin
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(x0)\" y=\"20\" font-weight=\"bold\">\(title)</text>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0 + plotWidth)\" y2=\"\(y0)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0)\" y2=\"\(y0 - plotHeight)\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            out += "<text x=\"\(x0 + plotWidth * Double(tick) / 4 - 10)\" y=\"\(y0 + 15)\">\(fixed(maxValue * 1000 * Double(tick) / 4, 0))</text>\n"
            out += "<text x=\"\(x0 - 35)\" y=\"\(y0 - plotHeight * Double(tick) / 4 + 4)\">\(fixed(Double(tick) / 4, 2))</text>\n"
        }
        out += "<text x=\"\(x0 + plotWidth / 2 - 30)\" y=\"\(y0 + 32)\">latency (ms)</text>\n"
        for (index, line) in series.enumerated() {
            let sorted = line.values.sorted()
            guard !sorted.isEmpty else { continue }
            let color = colors[index % colors.count]
            let points = sorted.enumerated().map { rank, value in
                "\(fixed(x0 + plotWidth * value / maxValue, 1)),\(fixed(y0 - plotHeight * Double(rank + 1) / Double(sorted.count), 1))"
            }
            let dashes = line.dashed ? " stroke-dasharray=\"6,4\"" : ""
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dashes) points=\"\(points.joined(separator: " "))\"/>\n"
            out += "<text x=\"\(x0 + plotWidth + 12)\" y=\"\(y0 - plotHeight + 16 * Double(index))\" fill=\"\(color)\">\(line.label)</text>\n"
        }
        return out + "</svg>\n"
    }

    /// One line per series: for each of its event times (seconds since the run's start), how
    /// many of its events had happened by then.
    static func overTime(title: String, series: [(label: String, times: [Double])], unit: String) -> String {
        let width = 640.0, height = 360.0, margin = 50.0
        let colors = ["#1f77b4", "#d62728", "#2ca02c"]
        let maxTime = max(series.flatMap(\.times).max() ?? 1, 0.001)
        let maxCount = Double(max(series.map(\.times.count).max() ?? 1, 1))
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let x0 = margin, y0 = height - margin, plotWidth = width - 2 * margin, plotHeight = height - 2 * margin
        out += "<text x=\"\(x0)\" y=\"20\" font-weight=\"bold\">\(title)</text>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0 + plotWidth)\" y2=\"\(y0)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0)\" y2=\"\(y0 - plotHeight)\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            out += "<text x=\"\(x0 + plotWidth * Double(tick) / 4 - 10)\" y=\"\(y0 + 15)\">\(fixed(maxTime * Double(tick) / 4, 1)) s</text>\n"
            out += "<text x=\"\(x0 - 40)\" y=\"\(y0 - plotHeight * Double(tick) / 4 + 4)\">\(Int(maxCount * Double(tick) / 4))</text>\n"
        }
        out += "<text x=\"\(x0 - 40)\" y=\"\(y0 - plotHeight - 10)\">\(unit)</text>\n"
        for (index, line) in series.enumerated() {
            let color = colors[index % colors.count]
            let points = line.times.sorted().enumerated().map { rank, time in
                "\(fixed(x0 + plotWidth * time / maxTime, 1)),\(fixed(y0 - plotHeight * Double(rank + 1) / maxCount, 1))"
            }
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
            out += "<text x=\"\(x0 + 10)\" y=\"\(y0 - plotHeight + 14 * Double(index))\" fill=\"\(color)\">\(line.label)</text>\n"
        }
        return out + "</svg>\n"
    }
}
