// The `--plot` SVGs of the benchmarks: latency CDFs of a path beside its floor (`bench
// controllers`, `bench kubelet`, `bench e2e`): one panel per measurement, the cumulative
// distribution of the measured latencies (solid) against the floor's (dashed), on a millisecond
// axis per panel; counts over time (`bench scheduler`, `bench e2e`): how many things had
// happened by each moment of a run, one line per series; and plain lines through points
// (`bench apiserver`: creates/s against watchers).

enum LatencyCDFPlot {
    /// `panels`: a title, the measured latencies and the floor's, in seconds; `measured` and
    /// `floor` name the two curves in each panel's legend.
    static func svg(_ panels: [(title: String, measured: [Double], floor: [Double])], measured: String, floor: String) -> String {
        let width = 420.0, height = 300.0, margin = 50.0
        var out = ""
        for (index, panel) in panels.enumerated() {
            let area = Area(x0: Double(index) * width + margin, y0: height - margin, width: width - margin - 20, height: height - 2 * margin)
            out += cdfPanel(panel.title, area, series: [Series(label: measured, values: panel.measured, color: "#1f77b4", dashed: false),
                                                        Series(label: floor, values: panel.floor, color: "#d62728", dashed: true)],
                            legend: (x: area.x0 + area.width - 110, step: 14))
        }
        return document(width: width * Double(panels.count), height: height, out)
    }

    /// Several latency CDFs on one axis (stages of one path, say): a colour per series, the
    /// `dashed` ones (a floor) drawn dashed.
    static func overlaid(title: String, series: [(label: String, values: [Double], dashed: Bool)]) -> String {
        let width = 720.0, height = 400.0, margin = 50.0, legend = 150.0
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#d62728"]
        let area = Area(x0: margin, y0: height - margin, width: width - margin - legend, height: height - 2 * margin)
        let lines = series.enumerated().map { index, line in
            Series(label: line.label, values: line.values, color: colors[index % colors.count], dashed: line.dashed)
        }
        return document(width: width, height: height, cdfPanel(title, area, series: lines, legend: (x: area.x0 + area.width + 12, step: 16)))
    }

    /// One line per series: for each of its event times (seconds since the run's start), how
    /// many of its events had happened by then.
    static func overTime(title: String, series: [(label: String, times: [Double])], unit: String) -> String {
        let width = 640.0, height = 360.0, margin = 50.0
        let colors = ["#1f77b4", "#d62728", "#2ca02c"]
        let maxTime = max(series.flatMap(\.times).max() ?? 1, 0.001)
        let maxCount = Double(max(series.map(\.times.count).max() ?? 1, 1))
        let area = Area(x0: margin, y0: height - margin, width: width - 2 * margin, height: height - 2 * margin)
        var out = frame(title, area)
        out += ticks(area, yLabelX: area.x0 - 40, x: { "\(fixed(maxTime * $0, 1)) s" }, y: { "\(Int(maxCount * $0))" })
        out += "<text x=\"\(area.x0 - 40)\" y=\"\(area.y0 - area.height - 10)\">\(unit)</text>\n"
        for (index, line) in series.enumerated() {
            let color = colors[index % colors.count]
            let points = line.times.sorted().enumerated().map { rank, time in (area.x(time / maxTime), area.y(Double(rank + 1) / maxCount)) }
            out += polyline(points, color: color, dashed: false)
            out += "<text x=\"\(area.x0 + 10)\" y=\"\(area.y0 - area.height + 14 * Double(index))\" fill=\"\(color)\">\(line.label)</text>\n"
        }
        return document(width: width, height: height, out)
    }

    /// One line per series through its (x, y) points, a dot at each (`bench apiserver`: creates/s
    /// against watchers, one line per backend); both axes start at 0.
    static func lines(title: String, series: [(label: String, points: [(x: Double, y: Double)])], x xUnit: String, y yUnit: String) -> String {
        let width = 640.0, height = 360.0, margin = 60.0
        let colors = ["#1f77b4", "#d62728", "#2ca02c"]
        let maxX = max(series.flatMap { $0.points.map(\.x) }.max() ?? 1, 1)
        let maxY = max(series.flatMap { $0.points.map(\.y) }.max() ?? 1, 1) * 1.1
        let area = Area(x0: margin, y0: height - margin, width: width - 2 * margin, height: height - 2 * margin)
        var out = frame(title, area)
        out += ticks(area, yLabelX: area.x0 - 50, x: { fixed(maxX * $0, 0) }, y: { grouped(maxY * $0) })
        out += "<text x=\"\(area.x(0.5) - 30)\" y=\"\(area.y0 + 32)\">\(xUnit)</text>\n"
        out += "<text x=\"\(area.x0 - 50)\" y=\"\(area.y0 - area.height - 20)\">\(yUnit)</text>\n"
        for (index, line) in series.enumerated() {
            let color = colors[index % colors.count]
            let points = line.points.sorted { $0.x < $1.x }.map { (area.x($0.x / maxX), area.y($0.y / maxY)) }
            out += polyline(points, color: color, dashed: false)
            for (x, y) in points { out += "<circle cx=\"\(fixed(x, 1))\" cy=\"\(fixed(y, 1))\" r=\"3\" fill=\"\(color)\"/>\n" }
            out += "<text x=\"\(area.x(1) - 80)\" y=\"\(area.y(1) + 14 * Double(index))\" fill=\"\(color)\">\(line.label)</text>\n"
        }
        return document(width: width, height: height, out)
    }

    // MARK: Pieces

    /// A plot's rectangle: (x0, y0) its bottom-left corner.
    private struct Area {
        var x0: Double, y0: Double, width: Double, height: Double
        /// The x of a fraction of the width, the y of a fraction of the height.
        func x(_ fraction: Double) -> Double { x0 + width * fraction }
        func y(_ fraction: Double) -> Double { y0 - height * fraction }
    }

    private struct Series {
        var label: String, values: [Double], color: String, dashed: Bool
    }

    private static func document(width: Double, height: Double, _ body: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n"
    }

    /// The title above `area` and its two axes.
    private static func frame(_ title: String, _ area: Area) -> String {
        "<text x=\"\(area.x0)\" y=\"20\" font-weight=\"bold\">\(title)</text>\n"
            + "<line x1=\"\(area.x0)\" y1=\"\(area.y0)\" x2=\"\(area.x(1))\" y2=\"\(area.y0)\" stroke=\"black\"/>\n"
            + "<line x1=\"\(area.x0)\" y1=\"\(area.y0)\" x2=\"\(area.x0)\" y2=\"\(area.y(1))\" stroke=\"black\"/>\n"
    }

    /// No stroke-dasharray at all for a solid line: an empty one is invalid SVG.
    private static func polyline(_ points: [(Double, Double)], color: String, dashed: Bool) -> String {
        let dashes = dashed ? " stroke-dasharray=\"6,4\"" : ""
        let coordinates = points.map { "\(fixed($0.0, 1)),\(fixed($0.1, 1))" }.joined(separator: " ")
        return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dashes) points=\"\(coordinates)\"/>\n"
    }

    /// Five labels along each axis of `area`, at 0, ¼, ½, ¾ and all of it (`x` and `y` turn
    /// that fraction into the label).
    private static func ticks(_ area: Area, yLabelX: Double, x: (Double) -> String, y: (Double) -> String) -> String {
        var out = ""
        for tick in 0...4 {
            let fraction = Double(tick) / 4
            out += "<text x=\"\(area.x(fraction) - 10)\" y=\"\(area.y0 + 15)\">\(x(fraction))</text>\n"
            out += "<text x=\"\(yLabelX)\" y=\"\(area.y(fraction) + 4)\">\(y(fraction))</text>\n"
        }
        return out
    }

    /// Latency CDFs (values in seconds, the axis in ms) in `area`, a legend line per series.
    private static func cdfPanel(_ title: String, _ area: Area, series: [Series], legend: (x: Double, step: Double)) -> String {
        let maxValue = max(series.flatMap(\.values).max() ?? 1, 0.001)
        var out = frame(title, area)
        out += ticks(area, yLabelX: area.x0 - 35, x: { fixed(maxValue * 1000 * $0, 0) }, y: { fixed($0, 2) })
        out += "<text x=\"\(area.x(0.5) - 30)\" y=\"\(area.y0 + 32)\">latency (ms)</text>\n"
        for (index, line) in series.enumerated() {
            let sorted = line.values.sorted()
            guard !sorted.isEmpty else { continue }
            let points = sorted.enumerated().map { rank, value in (area.x(value / maxValue), area.y(Double(rank + 1) / Double(sorted.count))) }
            out += polyline(points, color: line.color, dashed: line.dashed)
            out += "<text x=\"\(legend.x)\" y=\"\(area.y(1) + legend.step * Double(index))\" fill=\"\(line.color)\">\(line.label)</text>\n"
        }
        return out
    }
}
