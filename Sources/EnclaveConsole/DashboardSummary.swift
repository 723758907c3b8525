import Enclave
import Foundation

/// A practice's report rows arranged for the dashboard: totals per day (every day of the range,
/// zero when quiet), per source and campaign per day, and a bar chart drawn as SVG (the
/// Content-Security-Policy allows no inline style, and SVG attributes are not style).
struct DashboardSummary {
    struct Counts {
        var leads = 0
        var calls = 0
        var answered = 0
        var missed = 0
        var forms = 0

        mutating func add(_ row: LeadReports.Row) {
            leads += row.leads
            calls += row.calls
            answered += row.answered
            missed += row.missed
            forms += row.forms
        }
    }

    struct Day {
        let day: Date
        var counts: Counts
    }

    struct Campaign {
        let name: String
        var perDay: [Int]
        var total: Int { perDay.reduce(0, +) }
    }

    private(set) var days: [Day]
    private(set) var campaigns: [Campaign]
    private(set) var total = Counts()

    init(rows: [LeadReports.Row], days: [Date]) {
        self.days = days.map { Day(day: $0, counts: Counts()) }
        let index = Dictionary(uniqueKeysWithValues: days.enumerated().map { ($1, $0) })
        var byCampaign: [String: [Int]] = [:]
        for row in rows {
            guard let position = index[row.day] else { continue }
            self.days[position].counts.add(row)
            total.add(row)
            let name = "\(row.source ?? "direct") / \(row.campaign ?? "no campaign")"
            byCampaign[name, default: Array(repeating: 0, count: days.count)][position] += row.leads
        }
        campaigns = byCampaign.map { Campaign(name: $0.key, perDay: $0.value) }
            .sorted { ($0.total, $1.name) > ($1.total, $0.name) }
    }

    /// Stacked bars per day, oldest on the left, each labelled with its day: answered calls,
    /// missed calls, calls with no disposition, forms. Every value is a number in an attribute
    /// of a fixed shape, so nothing from a lead reaches the markup.
    var chart: String {
        let slot = 60, width = 40, height = 120, labels = 22
        let peak = max(days.map(\.counts.leads).max() ?? 0, 1)
        var marks = ""
        for (position, day) in days.enumerated() {
            let x = position * slot + (slot - width) / 2
            var top = height
            let other = day.counts.calls - day.counts.answered - day.counts.missed
            for (count, kind) in [
                (day.counts.answered, "answered"), (day.counts.missed, "missed"), (other, "other"),
                (day.counts.forms, "forms"),
            ] where count > 0 {
                let size = max(1, count * height / peak)
                top -= size
                marks += #"<rect class="\#(kind)" x="\#(x)" y="\#(top)" width="\#(width)" height="\#(size)"/>"#
            }
            let label = Console.utc("MM-dd").string(from: day.day)
            marks +=
                #"<text x="\#(position * slot + slot / 2)" y="\#(height + labels - 6)" text-anchor="middle">\#(label)</text>"#
        }
        let total = days.count * slot
        return #"<svg viewBox="0 0 \#(total) \#(height + labels)" focusable="false" aria-hidden="true">"#
            + #"<line x1="0" y1="\#(height)" x2="\#(total)" y2="\#(height)"/>\#(marks)</svg>"#
    }

    /// What the chart shows, for screen readers.
    var chartLabel: String {
        "Leads per day over the last \(days.count) days: \(total.answered) answered calls, \(total.missed) missed, "
            + "\(total.forms) forms"
    }
}
