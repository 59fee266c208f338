// The panel grid (layout.h).
#include "app/layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>

namespace moe::app {

namespace {

struct Item {
    int panel;      // index into the panel table, -1 for none
    float weight;
};

bool shown(const Panel* table, int id) { return id >= 0 && table[id].visible; }

// Splits r along one axis among the visible items, by weight; hidden items get nothing, so the
// visible ones close the gap. The last visible item takes the rounding leftovers so the grid
// meets the window edge.
void split(const Rect& r, bool horizontal, std::initializer_list<Item> items, const Panel* table,
           std::vector<Rect>& rects) {
    float total = 0;
    for (const Item& it : items)
        if (shown(table, it.panel)) total += it.weight;
    if (total <= 0) return;
    float at = horizontal ? r.x : r.y;
    Rect* last = nullptr;
    for (const Item& it : items) {
        if (!shown(table, it.panel)) continue;
        const float len = std::floor((horizontal ? r.w : r.h) * it.weight / total);
        Rect& out = rects[static_cast<size_t>(it.panel)];
        out = horizontal ? Rect{at, r.y, len, r.h} : Rect{r.x, at, r.w, len};
        at += len;
        last = &out;
    }
    if (horizontal) last->w = r.x + r.w - last->x;
    else last->h = r.y + r.h - last->y;
}

bool any_visible(const Panel* table, std::initializer_list<int> ids) {
    for (int id : ids)
        if (shown(table, id)) return true;
    return false;
}

}  // namespace

int find_panel(const Panel* table, int n_panels, const char* label) {
    for (int i = 0; i < n_panels; ++i)
        if (std::strcmp(table[i].label, label) == 0) return i;
    return -1;
}

// 1920x1080 and up has room for every panel at presenter sizes (seen on screenshots); smaller
// projectors (1280x720, 1600x900, 1024x768) do not.
bool presenter_folds(float width, float height) { return width < 1900.0f || height < 1000.0f; }

Layout compute_layout(const Rect& area, float scale, bool show_controls, bool fold, const Panel* table,
                      int n_panels) {
    const int controls = find_panel(table, n_panels, "Controls");
    const int text = find_panel(table, n_panels, "Text");
    const int tokens = find_panel(table, n_panels, "Tokens");
    const int router = find_panel(table, n_panels, "Router");
    const int load = find_panel(table, n_panels, "Expert load");
    const int prediction = find_panel(table, n_panels, "Next byte");
    const int heatmap = find_panel(table, n_panels, "Gate heatmap");
    const int counters = find_panel(table, n_panels, "Parameters and FLOPs");
    // The getting-started card takes the lesson's place while no lesson is open: floating, it
    // covered the counters and the load bars that its first step ("press 4") asks to watch.
    int lesson = find_panel(table, n_panels, "Lesson");
    if (!shown(table, lesson)) {
        const int card = find_panel(table, n_panels, "Getting started");
        if (shown(table, card)) lesson = card;
    }
    const int overview = find_panel(table, n_panels, "Model overview");
    Layout out;
    out.rects.assign(static_cast<size_t>(n_panels), Rect{});
    std::vector<Rect>& rects = out.rects;

    Rect main = area;
    const bool left_on = show_controls && any_visible(table, {controls, text});
    auto left_width = [&](float w) { return left_on ? std::floor(std::clamp(w * 0.24f, 250.0f * scale, 440.0f * scale)) : 0.0f; };
    // The lesson: a column of its own at the right, beside what it points at. Where that column
    // would leave the router row less than its wide layout needs (1024x768 with the controls:
    // router, load bars and heatmap were cut at the right), a strip along the bottom instead.
    if (shown(table, lesson)) {
        const float lesson_w = std::floor(std::clamp(area.w * 0.26f, 260.0f * scale, 520.0f * scale));
        const float beside = area.w - lesson_w - left_width(area.w - lesson_w);
        if (fold || beside >= 680.0f * scale) {
            rects[static_cast<size_t>(lesson)] = Rect{area.x + area.w - lesson_w, area.y, lesson_w, area.h};
            main.w -= lesson_w;
        } else {
            const float strip_h = std::floor(std::clamp(area.h * 0.3f, 170.0f * scale, 320.0f * scale));
            rects[static_cast<size_t>(lesson)] = Rect{area.x, area.y + area.h - strip_h, area.w, strip_h};
            main.h -= strip_h;
        }
    }
    if (left_on) {
        const float left_w = left_width(main.w);
        split(Rect{main.x, main.y, left_w, main.h}, false, {{controls, 0.68f}, {text, 0.32f}}, table, rects);
        main = Rect{main.x + left_w, main.y, main.w - left_w, main.h};
    }
    if (fold) {
        // Token strip on top, router large, load bars beside it, everything else in tabs below them.
        const float top_h = std::floor(std::clamp(main.h * 0.2f, 100.0f * scale, 200.0f * scale));
        if (shown(table, tokens)) {
            rects[static_cast<size_t>(tokens)] = Rect{main.x, main.y, main.w, top_h};
            main.y += top_h;
            main.h -= top_h;
        }
        const float side_w = std::floor(main.w * 0.38f);
        const bool router_on = shown(table, router);
        if (router_on) rects[static_cast<size_t>(router)] = Rect{main.x, main.y, main.w - side_w, main.h};
        const Rect col = router_on ? Rect{main.x + main.w - side_w, main.y, side_w, main.h} : main;
        for (int id : {show_controls ? -1 : text, prediction, heatmap, counters, overview})
            if (shown(table, id)) out.tabbed.push_back(id);
        std::sort(out.tabbed.begin(), out.tabbed.end());
        const float load_share = out.tabbed.empty() ? 1.0f : 0.5f;
        const float load_h = shown(table, load) ? std::floor(col.h * load_share) : 0.0f;
        if (load_h > 0) rects[static_cast<size_t>(load)] = Rect{col.x, col.y, col.w, load_h};
        if (!out.tabbed.empty()) out.tabs = Rect{col.x, col.y + load_h, col.w, col.h - load_h};
        return out;
    }
    const bool text_on_top = !show_controls;
    const float top_h = std::floor(std::clamp(main.h * 0.21f, 120.0f * scale, 260.0f * scale));
    if (any_visible(table, {tokens, text_on_top ? text : -1})) {
        split(Rect{main.x, main.y, main.w, top_h}, true, {{text_on_top ? text : -1, 0.3f}, {tokens, 0.7f}}, table,
              rects);
        main.y += top_h;
        main.h -= top_h;
    }
    // The heatmap and the whole-model overview share a slot as two tabs (the overview first: it
    // is shown because it was asked for).
    int maps = heatmap;
    if (shown(table, overview) && shown(table, heatmap)) {
        out.tabbed = {overview, heatmap};
    } else if (shown(table, overview)) {
        maps = overview;
    }
    const bool maps_on = shown(table, maps);
    // Wide enough (a 1024x768 window with the controls column is): the load bars get the router
    // row's whole height beside the router (at 256 experts a 166-pixel slot left 40 pixels of
    // bars), and the next-byte guess moves to the bottom row between the maps and the counters.
    // Narrower (a lesson column beside the controls on a small window): load over next byte.
    const bool wide = main.w >= 700.0f * scale;
    const bool side = any_visible(table, wide ? std::initializer_list<int>{load} : std::initializer_list<int>{load, prediction});
    const bool bottom = maps_on || any_visible(table, wide ? std::initializer_list<int>{prediction, counters}
                                                           : std::initializer_list<int>{counters});
    const float mid_h = bottom ? std::floor(main.h * 0.58f) : main.h;
    const float side_w = std::floor(main.w * (wide ? 0.38f : 0.36f));
    const bool router_on = shown(table, router);
    if (router_on) rects[static_cast<size_t>(router)] = Rect{main.x, main.y, side ? main.w - side_w : main.w, mid_h};
    if (side) {
        const Rect col = router_on ? Rect{main.x + main.w - side_w, main.y, side_w, mid_h}
                                   : Rect{main.x, main.y, main.w, mid_h};
        split(col, !router_on, {{load, 0.55f}, {wide ? -1 : prediction, 0.45f}}, table, rects);
    }
    if (bottom) {
        const Rect row{main.x, main.y + mid_h, main.w, main.h - mid_h};
        // A stand-in panel id for the tab slot: the heatmap's, whose rectangle becomes the tabs'.
        split(row, true, {{maps, wide ? 0.46f : 0.64f}, {wide ? prediction : -1, 0.26f}, {counters, wide ? 0.28f : 0.36f}},
              table, rects);
        if (!out.tabbed.empty()) {
            out.tabs = rects[static_cast<size_t>(heatmap)];
            rects[static_cast<size_t>(heatmap)] = Rect{};
        }
    }
    return out;
}

}  // namespace moe::app
