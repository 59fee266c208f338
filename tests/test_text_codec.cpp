// The text box's form of a text (app/text_codec.h): any bytes go through Dear ImGui's 16-bit
// editor and come back unchanged. Checked against the library's own conversions, the ones its
// multi-line editor uses on every edit (UTF-8 -> ImWchar -> UTF-8).
#include <gtest/gtest.h>
#include <imgui.h>
#include <imgui_internal.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "app/text_codec.h"
#include "core/text/utf8.h"

namespace moe::app {
namespace {

// What Dear ImGui 1.86's editor makes of a buffer: to 16-bit characters and back.
std::string through_imgui(const std::string& utf8) {
    std::vector<ImWchar> wide(utf8.size() + 1);
    const int n = ImTextStrFromUtf8(wide.data(), static_cast<int>(wide.size()), utf8.data(), utf8.data() + utf8.size());
    std::string back(static_cast<size_t>(n) * 3 + 1, '\0');
    const int m = ImTextStrToUtf8(back.data(), static_cast<int>(back.size()), wide.data(), wide.data() + n);
    back.resize(static_cast<size_t>(m));
    return back;
}

const std::string kHard = std::string("a\xF0\x9F\x98\x80 b\xE4\xB8\xAD\xE6\x96\x87") +  // emoji, CJK
                          std::string("\0x", 2) +                                       // NUL
                          "\xFF\xC3(\xED\xA0\x80" +                                   // not UTF-8, a surrogate
                          "\xEE\x80\x80" +                                             // U+E000 of the text itself
                          "\xF4\x8F\xBF\xBF" + "\xC3\xA9\n\tend";                      // U+10FFFF, e-acute

TEST(TextCodec, ImGuiItselfDamagesSuchText) {
    // The reason for the codec: without it, the editor's first edit changes these bytes.
    EXPECT_NE(through_imgui(kHard), kHard);
}

TEST(TextCodec, AnyBytesSurviveTheEditorAndComeBack) {
    StandIns table;
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {"a", " ", "\n", "\xF0\x9F\x98\x80", "\xF0\x9F\x8C\x8D", "\xE4\xB8\xAD",
                                             "\xC3\xA9", std::string(1, '\0'), "\xFF", "\x80", "\xEE\x80\x81",
                                             "\xEF\xA3\xBF", "\xED\xA0\x80", "\xF0\x9F", "\xF4\x90\x80\x80"};
    for (int round = 0; round < 2000; ++round) {
        std::string text;
        if (round == 0) text = kHard;
        const int n = static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) {
            if (rng() % 3 == 0) text += static_cast<char>(rng() & 0xFF);
            else text += pieces[rng() % pieces.size()];
        }
        std::string shown;
        OffsetMap map;
        ASSERT_TRUE(encode_for_editor(text, shown, map, table));
        // The editor's form is UTF-8 of BMP characters with no NUL, kept exactly by Dear ImGui.
        EXPECT_EQ(utf8::first_invalid(shown), std::string::npos);
        EXPECT_EQ(shown.find('\0'), std::string::npos);
        EXPECT_EQ(through_imgui(shown), shown) << "round " << round;
        EXPECT_EQ(decode_from_editor(shown, table), text) << "round " << round;
        // Offsets: every byte offset of the text maps into the editor's text and back to the
        // start of the character (or unreadable byte) it is in.
        std::vector<bool> boundary(text.size() + 1, false);
        for (size_t i = 0; i < text.size(); i += std::max<size_t>(1, utf8::valid_seq_len(text, i))) boundary[i] = true;
        boundary[text.size()] = true;
        for (int t = 0; t <= static_cast<int>(text.size()); ++t) {
            const int s = map.to_dst(t);
            ASSERT_GE(s, 0);
            ASSERT_LE(s, static_cast<int>(shown.size()));
            EXPECT_LE(map.to_src(s), t);
            EXPECT_EQ(map.to_dst(map.to_src(s)), s);
            if (boundary[static_cast<size_t>(t)]) EXPECT_EQ(map.to_src(s), t) << "round " << round << " offset " << t;
        }
        EXPECT_EQ(map.to_dst(static_cast<int>(text.size())), static_cast<int>(shown.size()));
    }
}

TEST(TextCodec, StandInsAreStableDistinctAndBounded) {
    StandIns table;
    const uint32_t a = table.of(0x1F600), b = table.of(0x1F30D), c = table.of(0xE000);
    EXPECT_EQ(table.of(0x1F600), a);
    EXPECT_NE(a, b);
    EXPECT_NE(b, c);
    EXPECT_NE(c, 0xE000u) << "a private-use character of the text gets a stand-in of its own";
    EXPECT_EQ(table.original(a), 0x1F600u);
    EXPECT_EQ(table.original(c), 0xE000u);
    EXPECT_EQ(table.original(kStandInLast), 0u);
    for (uint32_t cp = 0x20000; !table.full(); ++cp) ASSERT_NE(table.of(cp), 0u);
    EXPECT_EQ(table.size(), static_cast<size_t>(kStandInLast - kStandInFirst + 1));
    EXPECT_EQ(table.of(0x1F680), 0u);
    EXPECT_EQ(table.of(0x1F600), a) << "the ones assigned stay";
    // A text with a character that can get no stand-in is said to be so (the editor goes read-only).
    std::string shown;
    OffsetMap map;
    EXPECT_TRUE(encode_for_editor("\xF0\x9F\x98\x80", shown, map, table));
    EXPECT_FALSE(encode_for_editor("\xF0\x9F\x9A\x80", shown, map, table));
}

TEST(TextCodec, OffsetMapComposesWithSoftBreaks) {
    // Stand-ins, then soft breaks (an insertion at an offset): the panel's two layers.
    StandIns table;
    const std::string text = "ab\xF0\x9F\x98\x80" "cd";  // a b emoji c d
    std::string screen;
    OffsetMap subs;
    ASSERT_TRUE(encode_for_editor(text, screen, subs, table));
    ASSERT_EQ(screen.size(), 7u);
    OffsetMap breaks;
    breaks.add(5, 0, 1);  // a line break before 'c'
    const auto to_shown = [&](int t) { return breaks.to_dst(subs.to_dst(t)); };
    const auto to_text = [&](int s) { return subs.to_src(breaks.to_src(s)); };
    EXPECT_EQ(to_shown(0), 0);
    EXPECT_EQ(to_shown(2), 2);
    EXPECT_EQ(to_shown(4), 2) << "inside the emoji: its start";
    EXPECT_EQ(to_shown(6), 6) << "the caret before 'c' goes after the soft break";
    EXPECT_EQ(to_shown(8), 8);
    EXPECT_EQ(to_text(5), 6) << "the soft break itself maps to the text after it";
    EXPECT_EQ(to_text(6), 6);
    EXPECT_EQ(to_text(3), 2);
    EXPECT_EQ(to_text(8), 8);
}

}  // namespace
}  // namespace moe::app
