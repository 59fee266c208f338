// [SECTION] Helpers
// [SECTION] Routing plots
// [SECTION] Training curves
// [SECTION] Generic charts
// [SECTION] Writing files
#include "core/teach/export.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/text/utf8.h"

namespace moe {

// [SECTION] Helpers

std::string csv_float(float v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    return buf;
}

static std::string csv_double(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// A CSV field: quoted when it holds a comma, a quote or a line break.
static std::string csv_field(const std::string& s) {
    const std::string safe = printable_text(s);
    if (safe.find_first_of(",\"\n\r") == std::string::npos) return safe;
    std::string out = "\"";
    for (char c : safe) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

static std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

static std::vector<std::string> expert_categories(int n) {
    std::vector<std::string> c;
    for (int e = 0; e < n; ++e) c.push_back(std::to_string(e));
    return c;
}

// [SECTION] Routing plots

Plot load_plot(const RoutingTrace& trace, const std::string& title) {
    Plot p;
    const int n = trace.n_experts;
    p.title = title + "  (load CV " + fmt("%.2f", trace.stats.load_cv) + ", max/mean " + fmt("%.2f", trace.stats.max_over_mean) +
              (trace.stats.n_dropped > 0 ? ", dropped " + std::to_string(trace.stats.n_dropped) : std::string()) + ")";
    p.x_label = "expert";
    p.y_label = "tokens (token-expert pairs)";
    p.x_categories = expert_categories(n);
    const bool sized = static_cast<int>(trace.expert_load.size()) == n && static_cast<int>(trace.expert_wanted.size()) == n;
    for (int e = 0; e < n && sized; ++e) {
        const float kept = static_cast<float>(trace.expert_load[e]);
        const float wanted = static_cast<float>(std::max(trace.expert_wanted[e], trace.expert_load[e]));
        p.bars.push_back({static_cast<float>(e), 0.8f, 0.0f, kept, expert_color(e)});
        if (wanted > kept) p.bars.push_back({static_cast<float>(e), 0.8f, kept, wanted, kColorDropped});
        if (n <= 24) p.texts.push_back({static_cast<float>(e), wanted, std::to_string(trace.expert_load[e]), {30, 30, 30, 255}, 11});
    }
    if (trace.capacity >= 0) p.hlines.push_back({static_cast<float>(trace.capacity), kColorCapacity, true, "capacity " + std::to_string(trace.capacity)});
    p.legend.push_back({"kept", expert_color(0)});
    if (trace.stats.n_dropped > 0) p.legend.push_back({"dropped (overflow)", kColorDropped});
    return p;
}

std::string load_csv(const RoutingTrace& trace) {
    std::string s = "expert,wanted,kept,dropped,capacity\n";
    for (int e = 0; e < trace.n_experts && e < static_cast<int>(trace.expert_load.size()); ++e) {
        const int wanted = e < static_cast<int>(trace.expert_wanted.size()) ? trace.expert_wanted[e] : trace.expert_load[e];
        const int dropped = e < static_cast<int>(trace.expert_dropped.size()) ? trace.expert_dropped[e] : 0;
        s += std::to_string(e) + "," + std::to_string(wanted) + "," + std::to_string(trace.expert_load[e]) + "," +
             std::to_string(dropped) + "," + std::to_string(trace.capacity) + "\n";
    }
    return s;
}

Plot expert_counts_plot(std::span<const int64_t> counts, const std::string& title, const std::string& y_label) {
    Plot p;
    p.title = title;
    p.x_label = "expert";
    p.y_label = y_label;
    p.x_categories = expert_categories(static_cast<int>(counts.size()));
    for (size_t e = 0; e < counts.size(); ++e) {
        p.bars.push_back({static_cast<float>(e), 0.8f, 0.0f, static_cast<float>(counts[e]), expert_color(static_cast<int>(e))});
        if (counts.size() <= 24)
            p.texts.push_back({static_cast<float>(e), static_cast<float>(counts[e]), std::to_string(counts[e]), {30, 30, 30, 255}, 11});
    }
    return p;
}

std::string expert_counts_csv(std::span<const int64_t> counts) {
    std::string s = "expert,count\n";
    for (size_t e = 0; e < counts.size(); ++e) s += std::to_string(e) + "," + std::to_string(counts[e]) + "\n";
    return s;
}

TokenRows token_rows(const Tokenizer& tok, std::span<const TokenId> ids) {
    TokenRows r;
    r.ids.assign(ids.begin(), ids.end());
    r.pieces = tok.display_pieces(ids);
    return r;
}

// A row's piece for the plot: at most 16 characters (a long BPE piece or a special token's text).
static std::string short_piece(const std::string& piece) {
    size_t i = 0;
    for (int n = 0; i < piece.size() && n < 16; ++n) i += std::max<size_t>(1, utf8::valid_seq_len(piece, i));
    return i >= piece.size() ? piece : piece.substr(0, i) + "...";
}

Plot heatmap_plot(const RoutingTrace& trace, const TokenRows& tokens, const std::string& title) {
    Plot p;
    const int T = trace.n_tokens, N = trace.n_experts;
    p.title = title;
    p.x_label = "expert (outlined: chosen, crossed red: dropped; shade: router probability)";
    p.width = std::max(640, 64 + 28 * N + 146);
    p.height = std::clamp(44 + 18 + 14 * T + 40, 200, 4000);
    PlotHeatmap& hm = p.heatmap;
    hm.n_rows = T;
    hm.n_cols = N;
    hm.values.assign(static_cast<size_t>(T) * N, 0.0f);
    hm.marks.assign(static_cast<size_t>(T) * N, CellMark::None);
    if (trace.probs.rows() == T && trace.probs.cols() == N)
        for (int t = 0; t < T; ++t)
            for (int e = 0; e < N; ++e) hm.values[static_cast<size_t>(t) * N + e] = trace.probs(t, e);
    for (const RoutedPair& pr : trace.pairs) {
        if (pr.token < 0 || pr.token >= T || pr.expert < 0 || pr.expert >= N) continue;
        hm.marks[static_cast<size_t>(pr.token) * N + pr.expert] = pr.dropped ? CellMark::Dropped : CellMark::Chosen;
    }
    for (int t = 0; t < T; ++t)
        hm.row_labels.push_back(std::to_string(t) + " " +
                                (t < static_cast<int>(tokens.pieces.size()) ? short_piece(tokens.pieces[t]) : std::string()));
    hm.col_labels = expert_categories(N);
    p.legend.push_back({"chosen", {30, 30, 30, 255}});
    p.legend.push_back({"dropped", kColorDropped});
    return p;
}

std::string heatmap_csv(const RoutingTrace& trace, const TokenRows& tokens) {
    const int T = trace.n_tokens, N = trace.n_experts;
    std::vector<const RoutedPair*> pair_of(static_cast<size_t>(T) * N, nullptr);
    for (const RoutedPair& pr : trace.pairs)
        if (pr.token >= 0 && pr.token < T && pr.expert >= 0 && pr.expert < N) pair_of[static_cast<size_t>(pr.token) * N + pr.expert] = &pr;
    const bool have_logits = trace.logits.rows() == T && trace.logits.cols() == N;
    const bool have_probs = trace.probs.rows() == T && trace.probs.cols() == N;
    std::string s = "token,id,piece,expert,logit,prob,chosen,rank,gate,dropped\n";
    for (int t = 0; t < T; ++t) {
        const std::string id = t < static_cast<int>(tokens.ids.size()) ? std::to_string(tokens.ids[t]) : std::string();
        const std::string piece = t < static_cast<int>(tokens.pieces.size()) ? csv_field(tokens.pieces[t]) : std::string();
        for (int e = 0; e < N; ++e) {
            const RoutedPair* pr = pair_of[static_cast<size_t>(t) * N + e];
            s += std::to_string(t) + "," + id + "," + piece + "," + std::to_string(e) + "," + (have_logits ? csv_float(trace.logits(t, e)) : "") + "," +
                 (have_probs ? csv_float(trace.probs(t, e)) : "") + "," + (pr ? "1" : "0") + "," + (pr ? std::to_string(pr->rank) : "") + "," +
                 (pr ? csv_float(pr->gate) : "") + "," + (pr && pr->dropped ? "1" : "0") + "\n";
        }
    }
    return s;
}

// [SECTION] Training curves

void TrainingCurves::add(int step_index, float loss_value, float cv, std::vector<int> load) {
    if (!step.empty() && (step_index - step.front()) % stride != 0) return;  // between kept points
    step.push_back(step_index);
    loss.push_back(loss_value);
    load_cv.push_back(cv);
    expert_load.push_back(std::move(load));
    if (step.size() < kMaxPoints) return;
    // Halve the resolution, keeping the first point: the run stays whole.
    stride *= 2;
    size_t kept = 0;
    for (size_t i = 0; i < step.size(); ++i) {
        if ((step[i] - step.front()) % stride != 0) continue;
        step[kept] = step[i];
        loss[kept] = loss[i];
        load_cv[kept] = load_cv[i];
        expert_load[kept] = std::move(expert_load[i]);
        ++kept;
    }
    step.resize(kept);
    loss.resize(kept);
    load_cv.resize(kept);
    expert_load.resize(kept);
}

namespace {
// A picture needs no more points than it has pixels across: every n-th point, and the last.
constexpr size_t kPlotPoints = 2000;
std::vector<size_t> plot_indices(size_t n) {
    std::vector<size_t> idx;
    const size_t stride = std::max<size_t>(1, (n + kPlotPoints - 1) / kPlotPoints);
    for (size_t i = 0; i < n; i += stride) idx.push_back(i);
    if (n > 0 && idx.back() != n - 1) idx.push_back(n - 1);
    return idx;
}
}  // namespace

Plot training_loss_plot(const TrainingCurves& c, const std::string& title) {
    Plot p;
    p.title = title;
    p.x_label = "training step";
    p.y_label = "loss / load CV";
    PlotLine loss{c.loss_name, {0, 114, 178, 255}, 2.0f, {}, {}};
    PlotLine cv{"load CV", {213, 94, 0, 255}, 2.0f, {}, {}};
    for (size_t i : plot_indices(c.size())) {
        loss.xs.push_back(static_cast<float>(c.step[i]));
        loss.ys.push_back(c.loss[i]);
        cv.xs.push_back(static_cast<float>(c.step[i]));
        cv.ys.push_back(c.load_cv[i]);
    }
    p.legend = {{loss.name, loss.color}, {cv.name, cv.color}};
    p.lines = {std::move(loss), std::move(cv)};
    p.y_min = 0;
    return p;
}

Plot training_load_plot(const TrainingCurves& c, const std::string& title) {
    Plot p;
    p.title = title;
    p.x_label = "training step";
    p.y_label = "share of the batch's tokens";
    size_t n = 0;
    for (const auto& l : c.expert_load) n = std::max(n, l.size());
    for (size_t e = 0; e < n; ++e) {
        PlotLine line{"expert " + std::to_string(e), expert_color(static_cast<int>(e)), 1.5f, {}, {}};
        for (size_t i : plot_indices(c.size())) {
            const std::vector<int>& l = c.expert_load[i];
            double total = 0;
            for (int v : l) total += v;
            line.xs.push_back(static_cast<float>(c.step[i]));
            line.ys.push_back(e < l.size() && total > 0 ? static_cast<float>(l[e] / total) : 0.0f);
        }
        if (e < 12) p.legend.push_back({line.name, line.color});
        p.lines.push_back(std::move(line));
    }
    p.y_min = 0;
    p.y_max = 1;
    return p;
}

std::string training_csv(const TrainingCurves& c) {
    size_t n = 0;
    for (const auto& l : c.expert_load) n = std::max(n, l.size());
    std::string s = "step,loss,load_cv";
    for (size_t e = 0; e < n; ++e) s += ",load_" + std::to_string(e);
    s += "\n";
    for (size_t i = 0; i < c.size(); ++i) {
        s += std::to_string(c.step[i]) + "," + csv_float(c.loss[i]) + "," + csv_float(c.load_cv[i]);
        for (size_t e = 0; e < n; ++e) {
            s += ',';
            if (e < c.expert_load[i].size()) s += std::to_string(c.expert_load[i][e]);
        }
        s += "\n";
    }
    return s;
}

// [SECTION] Generic charts

Plot line_chart_plot(const LineChart& chart) {
    Plot p;
    p.title = chart.title;
    p.x_label = chart.x_label;
    p.y_label = chart.y_label;
    p.y_log = chart.y_log;
    for (size_t s = 0; s < chart.ys.size(); ++s) {
        const std::string name = s < chart.names.size() ? chart.names[s] : "series " + std::to_string(s);
        PlotLine line{name, expert_color(static_cast<int>(s)), 2.0f, chart.xs, chart.ys[s]};
        line.xs.resize(std::min(line.xs.size(), line.ys.size()));
        p.legend.push_back({name, line.color});
        p.lines.push_back(std::move(line));
    }
    return p;
}

std::string line_chart_csv(const LineChart& chart) {
    std::string s = csv_field(chart.x_label.empty() ? "x" : chart.x_label);
    for (size_t k = 0; k < chart.ys.size(); ++k) s += "," + csv_field(k < chart.names.size() ? chart.names[k] : "series " + std::to_string(k));
    s += "\n";
    for (size_t i = 0; i < chart.xs.size(); ++i) {
        s += csv_float(chart.xs[i]);
        for (const auto& ys : chart.ys) {
            s += ',';
            if (i < ys.size()) s += csv_float(ys[i]);
        }
        s += "\n";
    }
    return s;
}

Plot bar_chart_plot(const BarChart& chart) {
    Plot p;
    p.title = chart.title;
    p.y_label = chart.y_label;
    p.x_categories = chart.categories;
    const size_t n_series = chart.values.size();
    const float group = 0.8f, w = n_series ? group / static_cast<float>(n_series) : group;
    for (size_t s = 0; s < n_series; ++s) {
        const Rgba col = expert_color(static_cast<int>(s));
        for (size_t c = 0; c < chart.categories.size() && c < chart.values[s].size(); ++c) {
            const float x = static_cast<float>(c) - group / 2 + w * (static_cast<float>(s) + 0.5f);
            const float v = static_cast<float>(chart.values[s][c]);
            p.bars.push_back({x, w * 0.9f, 0.0f, v, col});
            p.texts.push_back({x, v, fmt("%.3g", chart.values[s][c]), {30, 30, 30, 255}, 10});
        }
        p.legend.push_back({s < chart.names.size() ? chart.names[s] : "series " + std::to_string(s), col});
    }
    return p;
}

std::string bar_chart_csv(const BarChart& chart) {
    std::string s = "category";
    for (size_t k = 0; k < chart.values.size(); ++k) s += "," + csv_field(k < chart.names.size() ? chart.names[k] : "series " + std::to_string(k));
    s += "\n";
    for (size_t c = 0; c < chart.categories.size(); ++c) {
        s += csv_field(chart.categories[c]);
        for (const auto& v : chart.values) {
            s += ',';
            if (c < v.size()) s += csv_double(v[c]);
        }
        s += "\n";
    }
    return s;
}

// [SECTION] Writing files

ExportFormat export_format_for(const std::string& path, const std::string& where) {
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".png") return ExportFormat::Png;
    if (ext == ".svg") return ExportFormat::Svg;
    if (ext == ".csv") return ExportFormat::Csv;
    throw Error(where, "--out", "'" + printable_text(path) + "' has no known extension", "end the file name in .png, .svg or .csv");
}

std::string export_bytes(const Plot& plot, const std::string& csv, ExportFormat format) {
    switch (format) {
        case ExportFormat::Png: return encode_png(render_image(plot));
        case ExportFormat::Svg: return render_svg(plot);
        case ExportFormat::Csv: return csv;
    }
    MOE_ASSERT(false, "ExportFormat out of range");
    return {};
}

void export_file(const Plot& plot, const std::string& csv, const std::string& path) {
    write_file_atomic(path, export_bytes(plot, csv, export_format_for(path, path)));
}

std::vector<std::string> export_all(const Plot& plot, const std::string& csv, const std::string& dir, const std::string& stem) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        fs::create_directories(dir, ec);
        if (ec) throw Error(dir, "", "cannot create the output folder: " + ec.message(), "choose a folder you can write to");
    }
    const ExportFormat formats[] = {ExportFormat::Png, ExportFormat::Svg, ExportFormat::Csv};
    const char* exts[] = {".png", ".svg", ".csv"};
    std::vector<std::string> bytes, paths;
    for (int i = 0; i < 3; ++i) {
        bytes.push_back(export_bytes(plot, csv, formats[i]));
        paths.push_back((fs::path(dir) / (stem + exts[i])).string());
    }
    for (int i = 0; i < 3; ++i) write_file_atomic(paths[i], bytes[i]);
    return paths;
}

}  // namespace moe
