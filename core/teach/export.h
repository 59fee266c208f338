// The plots moelab exports, built from routing traces and training curves, each as a picture
// (PNG or SVG, core/teach/plot.h) and as the numbers behind it (CSV). Files are written atomically
// (core/io/file_io.h): an unwritable path throws moe::Error naming it and leaves what was there.
//
// CSV numbers are printed with 9 significant digits, so a float read back is bit-identical to
// the one in the trace.
//
// [SECTION] Routing plots
// [SECTION] Training curves
// [SECTION] Generic charts
// [SECTION] Writing files
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/teach/plot.h"
#include "core/engine/routing.h"
#include "core/text/tokenizer.h"

namespace moe {

// [SECTION] Routing plots
// Per-expert kept load as bars in the expert colours, overflow (dropped pairs) stacked in red on
// top, the capacity as a dashed line; load CV and max/mean in the title.
Plot load_plot(const RoutingTrace& trace, const std::string& title);
// expert,wanted,kept,dropped,capacity
std::string load_csv(const RoutingTrace& trace);

// Any per-expert counts (e.g. cumulative load over many runs), same look without capacity.
Plot expert_counts_plot(std::span<const int64_t> counts, const std::string& title, const std::string& y_label);
std::string expert_counts_csv(std::span<const int64_t> counts);

// The tokens a heatmap's rows are: each one's id and its readable piece (whitespace visible, a
// token that ends inside a character as its bytes "<E2 80>": Tokenizer::display_pieces).
struct TokenRows {
    std::vector<TokenId> ids;
    std::vector<std::string> pieces;
};
TokenRows token_rows(const Tokenizer& tok, std::span<const TokenId> ids);

// Tokens x experts router probabilities; chosen pairs outlined, dropped pairs crossed in red.
// Rows are labelled "t piece" (tokens may be empty: numbers only).
Plot heatmap_plot(const RoutingTrace& trace, const TokenRows& tokens, const std::string& title);
// token,id,piece,expert,logit,prob,chosen,rank,gate,dropped: one row per (token, expert). For the
// built-in byte model the id is the byte.
std::string heatmap_csv(const RoutingTrace& trace, const TokenRows& tokens);


// [SECTION] Training curves
// A whole run: every step is kept up to kMaxPoints; past that, every other point is dropped
// (the run stays whole from step 1 to the last, at half the resolution), so the collapse phase is
// still there when the cure is exported. Plots thin the points further for drawing; the CSV holds
// what is kept.
struct TrainingCurves {
    static constexpr size_t kMaxPoints = 100000;
    std::string loss_name = "loss (MSE)";       // the legend: "loss (MSE)" (2D mixture) or cross-entropy
    std::vector<int> step;                      // (n_points)
    std::vector<float> loss;                    // (n_points)
    std::vector<float> load_cv;                 // (n_points)
    std::vector<std::vector<int>> expert_load;  // (n_points) x (n_experts) kept pairs per expert

    void add(int step_index, float loss_value, float cv, std::vector<int> load);
    size_t size() const { return step.size(); }
    int stride = 1;                             // steps between kept points (1, then 2, 4, ...)
};
Plot training_loss_plot(const TrainingCurves& curves, const std::string& title);  // loss and load CV
Plot training_load_plot(const TrainingCurves& curves, const std::string& title);  // each expert's share of the load
// step,loss,load_cv,load_0,...,load_{N-1}
std::string training_csv(const TrainingCurves& curves);

// [SECTION] Generic charts
// Line chart: several series over the same x values (the systems views).
struct LineChart {
    std::string title, x_label, y_label;
    std::vector<float> xs;                   // (n_points)
    std::vector<std::string> names;          // (n_series)
    std::vector<std::vector<float>> ys;      // (n_series) x (n_points)
    bool y_log = false;                      // y on a log10 scale
};
Plot line_chart_plot(const LineChart& chart);
std::string line_chart_csv(const LineChart& chart);  // x_label,name_0,...

// Grouped bars: one group per category, one bar per series (the gallery's total vs active).
struct BarChart {
    std::string title, y_label;
    std::vector<std::string> categories;     // (n_categories)
    std::vector<std::string> names;          // (n_series)
    std::vector<std::vector<double>> values; // (n_series) x (n_categories)
};
Plot bar_chart_plot(const BarChart& chart);
std::string bar_chart_csv(const BarChart& chart);  // category,name_0,...

// [SECTION] Writing files
enum class ExportFormat : int { Png = 0, Svg, Csv };
// From the file's extension (.png, .svg, .csv, any case); throws moe::Error naming `where` otherwise.
ExportFormat export_format_for(const std::string& path, const std::string& where);

// The bytes of one format: PNG (rasterised), SVG, or the CSV given.
std::string export_bytes(const Plot& plot, const std::string& csv, ExportFormat format);

// Writes one file, the format chosen by the extension.
void export_file(const Plot& plot, const std::string& csv, const std::string& path);

// Writes dir/stem.png, dir/stem.svg and dir/stem.csv (all three rendered before anything is
// written); returns the paths.
std::vector<std::string> export_all(const Plot& plot, const std::string& csv, const std::string& dir, const std::string& stem);

// Formats a float so that strtof reads back the same value.
std::string csv_float(float v);

}  // namespace moe
