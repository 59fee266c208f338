// Prediction: what the model expects after the current token, as bars of probability over its
// most likely next tokens, each labelled with its piece from the model's tokenizer (a byte for
// the built-in model, a BPE piece from a 32k-200k vocabulary for a real one), with the token that
// really comes next marked. The top list is computed once per snapshot and token, not per frame.
#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"
#include "core/models/lm.h"

namespace moe::app {

namespace {
constexpr int kTopN = 10;

// The token's display piece (core/text/tokenizer.h), ready for ImGui.
std::string piece_of(const Tokenizer& tok, TokenId id) {
    const TokenId one[1] = {id};
    const std::vector<std::string> p = tok.display_pieces(one);
    return screen_text(p.empty() ? std::string("?") : p.front());
}

struct TopCache {
    uint64_t generation = ~0ull;
    int cur = -1;
    std::vector<std::pair<int, float>> top;  // (id, p), best first
    std::vector<std::string> pieces;         // display piece of each
    std::string actual_piece;
    std::string current_piece;  // the current token as the strip shows it (in context)
};
}  // namespace

void draw_prediction(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    const ViewState& view = ctx.view;
    const int n_tokens = static_cast<int>(snap.tokens.size());
    const Mat& logits = snap.forward.logits;  // (n_tokens, vocab)
    if (n_tokens == 0) {
        empty_message("Nothing routed yet: type some text, and the model's guess for the next byte shows here.");
        return;
    }
    if (logits.rows() != n_tokens || logits.cols() < 2) {
        empty_message("No next-byte prediction in this result.");
        return;
    }
    const int cur = clamped_cursor(view, n_tokens);
    const int vocab = static_cast<int>(logits.cols());

    // The probabilities and the rank of the true next byte: a softmax over one row (256 values).
    const float mx = logits.row(cur).maxCoeff();
    double z = 0.0;
    for (int v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(logits(cur, v) - mx));
    const bool has_next = cur + 1 < n_tokens;
    const int actual = has_next ? static_cast<int>(snap.tokens[static_cast<size_t>(cur) + 1]) : -1;
    const Tokenizer& tokenizer = ctx.session.model().tokenizer();
    float actual_p = 0.0f;
    int actual_rank = 0;
    if (has_next && actual < vocab) {
        actual_p = static_cast<float>(std::exp(static_cast<double>(logits(cur, actual) - mx)) / z);
        for (int v = 0; v < vocab; ++v)
            if (logits(cur, v) > logits(cur, actual)) ++actual_rank;
    }

    static TopCache cache;
    if (cache.generation != snap.generation || cache.cur != cur) {
        cache.generation = snap.generation;
        cache.cur = cur;
        cache.top = top_next_bytes(logits.row(cur), kTopN);  // any vocabulary: a partial sort of the row
        cache.pieces.clear();
        for (const auto& [id, p] : cache.top) cache.pieces.push_back(piece_of(tokenizer, id));
        cache.actual_piece = has_next ? piece_of(tokenizer, actual) : std::string();
        const std::vector<std::string> all = tokenizer.display_pieces(snap.tokens);
        cache.current_piece = screen_text(static_cast<size_t>(cur) < all.size() ? all[static_cast<size_t>(cur)] : "?");
    }
    {
        char head[128];
        std::snprintf(head, sizeof head, "After token %d, \"%s\", the model expects:", cur, cache.current_piece.c_str());
        text_wrapped_before_teach(head);
    }
    teach("The model reads the text up to the current token and scores every possible next token (256 bytes "
          "for the built-in model, tens of thousands of pieces for a real one). These are its favourites. The "
          "MoE layers are part of how it got there: change the routing knobs and watch this guess get better or worse.");

    const std::vector<std::pair<int, float>>& top = cache.top;
    if (top.empty()) {
        empty_message("No candidates.");
        return;
    }
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImFont* mono = font_mono();
    ImFont* font = ImGui::GetFont();
    const float fs = ImGui::GetFontSize();
    const float row_h = std::max(fs * 1.45f, mono->FontSize * 1.15f);
    const float avail = ImGui::GetContentRegionAvail().x;
    // As wide as the widest piece, up to 40% of the panel (a long BPE piece is cut there).
    float label_w = mono->CalcTextSizeA(mono->FontSize, FLT_MAX, 0.0f, "<E2>").x;
    for (const std::string& pc : cache.pieces)
        label_w = std::max(label_w, mono->CalcTextSizeA(mono->FontSize, FLT_MAX, 0.0f, pc.c_str()).x);
    label_w = std::min(label_w, avail * 0.4f) + 10.0f;
    const float pct_w = font->CalcTextSizeA(fs, FLT_MAX, 0.0f, "100.0%  <- actual").x + 8.0f;
    const float bar_max = std::max(avail - label_w - pct_w, 30.0f);
    const float p_top = std::max(top.front().second, 1e-6f);
    const ImVec2 a = ImGui::GetCursorScreenPos();
    // As many rows as fit above the "actual next token" line (two lines of text), at least 3,
    // so the rank of the real next token shows without scrolling in a short 720p slot.
    const float room = ImGui::GetContentRegionAvail().y - ImGui::GetTextLineHeightWithSpacing() * 2.2f;
    const size_t n_rows = std::clamp(static_cast<size_t>(std::max(room, 0.0f) / row_h), size_t{3}, top.size());
    for (size_t i = 0; i < n_rows; ++i) {
        const int byte = top[i].first;
        const float p = top[i].second;
        const float y = a.y + row_h * static_cast<float>(i);
        const bool is_actual = byte == actual;
        const std::string& lab = cache.pieces[i];
        dl->PushClipRect(ImVec2(a.x, y), ImVec2(a.x + label_w - 6.0f, y + row_h), true);
        dl->AddText(mono, mono->FontSize, ImVec2(a.x + 4.0f, y + (row_h - mono->FontSize) * 0.5f),
                    is_actual ? IM_COL32(255, 255, 255, 255) : IM_COL32(215, 215, 225, 255), lab.c_str());
        dl->PopClipRect();
        // Bars relative to the favourite, so a flat guess and a confident one both read.
        const float len = bar_max * std::clamp(p / p_top, 0.0f, 1.0f);
        const ImVec2 b0(a.x + label_w, y + row_h * 0.18f), b1(a.x + label_w + std::max(len, 2.0f), y + row_h * 0.82f);
        dl->AddRectFilled(b0, b1, is_actual ? IM_COL32(0, 158, 115, 255) : IM_COL32(86, 140, 200, 220), 2.0f);
        if (is_actual) dl->AddRect(ImVec2(b0.x - 2, b0.y - 2), ImVec2(b1.x + 2, b1.y + 2), IM_COL32(255, 255, 255, 255), 3.0f, 0, 2.0f);
        char pct[40];
        std::snprintf(pct, sizeof pct, is_actual ? "%.1f%%  <- actual" : "%.1f%%", 100.0 * p);
        dl->AddText(font, fs, ImVec2(b1.x + 6.0f, y + (row_h - fs) * 0.5f),
                    is_actual ? IM_COL32(120, 230, 180, 255) : IM_COL32(220, 220, 230, 255), pct);
    }
    ImGui::Dummy(ImVec2(avail, row_h * static_cast<float>(n_rows)));

    if (!has_next) {
        ImGui::TextDisabled("This is the last token: there is no actual next token to compare with.");
    } else {
        const char* lab = cache.actual_piece.c_str();
        const bool in_top = actual_rank < static_cast<int>(n_rows);
        char line[256];
        if (in_top)
            std::snprintf(line, sizeof line, "Actual next token %s: rank %d of %d, %.1f%%", lab, actual_rank + 1, vocab,
                          100.0 * actual_p);
        else
            std::snprintf(line, sizeof line, "Actual next token %s is not in the top %zu: rank %d of %d, %.2f%%", lab,
                          n_rows, actual_rank + 1, vocab, 100.0 * actual_p);
        if (!in_top) ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.7f, 0.4f, 1.0f));
        text_wrapped_before_teach(line);  // wrapped: a 250-pixel slot at 720p cuts it otherwise
        if (!in_top) ImGui::PopStyleColor();
        teach("Rank 1 means the model's favourite was right. The loss the model was trained on is "
              "-log(p of the actual token): high p, low loss.");
    }
}

}  // namespace moe::app
