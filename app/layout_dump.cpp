// --dump-layout (layout_dump.h).
#include "app/layout_dump.h"

#include <imgui.h>
#include <imgui_internal.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/io/file_io.h"

namespace moe::app::dump {

namespace {

struct State {
    std::string path;
    std::string body;          // this frame's report, being built
    std::string last_body;     // what was last written, without the state line's time
    std::string last_state;
    long long state_since_ns = 0;
};

State& st() {
    static State s;
    return s;
}

long long wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void rect_line(const char* kind, const std::string& name, float x, float y, float w, float h, const char* tail) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "\" %.0f %.0f %.0f %.0f%s\n", x, y, w, h, tail);
    st().body += kind;
    st().body += " \"" + name + buf;
}

void panel_line(const std::string& label, float x, float y, float w, float h, bool cut_right, bool cut_bottom,
                const std::string& where) {
    rect_line("panel", label, x, y, w, h,
              ((cut_right ? " cut_right" : std::string()) + (cut_bottom ? " cut_bottom" : "") + where).c_str());
}

}  // namespace

bool enabled() { return !st().path.empty(); }
void enable(const std::string& path) { st().path = path; }

void begin_frame() {
    if (enabled()) st().body.clear();
}

void end_frame(const std::string& state) {
    State& s = st();
    if (!enabled()) return;
    if (state != s.last_state) {
        s.last_state = state;
        s.state_since_ns = wall_ns();
    }
    const std::string body = "state " + state + "\n" + s.body;
    if (body == s.last_body) return;
    s.last_body = body;
    char when[64];
    std::snprintf(when, sizeof when, "shown_ns %lld\n", s.state_since_ns);
    try {
        write_file_atomic(s.path, std::string(when) + body);
    } catch (const Error& e) {
        std::fprintf(stderr, "moelab: --dump-layout: %s\n", e.what());
        s.path.clear();  // once: do not repeat the message every frame
    }
}

void item(const std::string& name) {
    if (!enabled()) return;
    const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
    rect_line("item", name, a.x, a.y, b.x - a.x, b.y - a.y, "");
}

void panel(const std::string& label, float x, float y, float w, float h, bool cut_right, bool cut_bottom) {
    if (!enabled()) return;
    panel_line(label, x, y, w, h, cut_right, cut_bottom, "");
}

void clipped(const std::string& what, float need, float have) {
    if (!enabled()) return;
    char buf[96];
    std::snprintf(buf, sizeof buf, "\" need %.0f have %.0f\n", need, have);
    st().body += "clipped \"" + what + buf;
}

void message(const std::string& text) {
    if (!enabled()) return;
    std::string one_line = text;
    for (char& c : one_line)
        if (c == '\n') c = ' ';
    st().body += "message \"" + one_line + "\"\n";
}

void fact(const std::string& name, const std::string& value) {
    if (enabled()) st().body += "fact \"" + name + "\" " + value + "\n";
}

bool text_fits(const char* what, const char* text, float width) {
    const float need = ImGui::CalcTextSize(text).x;
    if (need <= width + 0.5f) return true;
    clipped(std::string(what) + ": " + text, need, width);
    return false;
}

void current_window(const std::string& label) {
    if (!enabled()) return;
    const ImGuiWindow* w = ImGui::GetCurrentWindowRead();
    // CursorMaxPos is how far the items reached this frame (text included, wrapped or not);
    // the work rectangle is what the window shows without scrolling.
    const bool cut_right = !w->ScrollbarX && w->DC.CursorMaxPos.x > w->WorkRect.Max.x + 1.0f;
    const bool cut_bottom = w->DC.CursorMaxPos.y > w->InnerRect.Max.y + 1.0f;
    // Where: the rows (screen y) of what was drawn past the right edge, from the window's own
    // vertices, so a failing test can say which line of the panel is cut (look at that height).
    std::string where;
    if (cut_right) {
        float y0 = FLT_MAX, y1 = -FLT_MAX;
        // Glyphs wholly outside the clip rectangle are never emitted, so a cut line leaves vertices
        // between the work rectangle's edge and the clip edge; the title bar, border and
        // scrollbar lie outside that band.
        // (a glyph crossing the clip edge reaches past it by up to its width).
        const float edge = w->WorkRect.Max.x + 1.0f, clip = w->InnerClipRect.Max.x + ImGui::GetFontSize() * 1.5f;
        for (const ImDrawVert& v : w->DrawList->VtxBuffer)
            if (v.pos.x > edge && v.pos.x <= clip && v.pos.y > w->InnerRect.Min.y + 1.0f && v.pos.y < w->InnerRect.Max.y - 1.0f) {
                y0 = std::min(y0, v.pos.y);
                y1 = std::max(y1, v.pos.y);
            }
        char buf[64];
        if (y0 <= y1) std::snprintf(buf, sizeof buf, " at_y %.0f..%.0f", y0, y1);
        else std::snprintf(buf, sizeof buf, " at_y ?");
        where = buf;
    }
    if (enabled()) panel_line(label, w->Pos.x, w->Pos.y, w->Size.x, w->Size.y, cut_right, cut_bottom, where);
}

}  // namespace moe::app::dump
