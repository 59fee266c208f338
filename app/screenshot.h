// Saving what the window shows as a PNG (--screenshot and Ctrl+S).
#pragma once

#include <string>

namespace moe::app {

// Reads the current GL framebuffer (width x height pixels, RGBA) and writes it to `path` as a
// PNG, top row first. Throws moe::Error naming the file when it cannot be written.
void save_framebuffer_png(const std::string& path, int width, int height);

}  // namespace moe::app
