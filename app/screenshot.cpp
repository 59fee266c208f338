// Framebuffer -> PNG with Debian's stb (libstb provides the stb_image_write implementation).
#include "app/screenshot.h"

#include <GLFW/glfw3.h>

#include <cstdint>
#include <cstring>
#include <stb/stb_image_write.h>
#include <vector>

#include "core/error.h"

namespace moe::app {

void save_framebuffer_png(const std::string& path, int width, int height) {
    if (width <= 0 || height <= 0)
        throw Error(path, "framebuffer", std::to_string(width) + "x" + std::to_string(height),
                    "the window has no pixels to save");
    const size_t row_bytes = static_cast<size_t>(width) * 4;
    std::vector<uint8_t> pixels(row_bytes * static_cast<size_t>(height));  // (height, width, 4), bottom row first
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, width, height, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
    // GL's origin is bottom-left; PNG's is top-left.
    std::vector<uint8_t> flipped(pixels.size());
    for (int y = 0; y < height; ++y)
        std::memcpy(flipped.data() + static_cast<size_t>(y) * row_bytes,
                    pixels.data() + static_cast<size_t>(height - 1 - y) * row_bytes, row_bytes);
    // The default framebuffer may carry a meaningless alpha; a screenshot is opaque.
    for (size_t i = 3; i < flipped.size(); i += 4) flipped[i] = 255;
    if (!stbi_write_png(path.c_str(), width, height, 4, flipped.data(), static_cast<int>(row_bytes)))
        throw Error(path, "png", "could not be written", "check that the folder exists and is writable");
}

}  // namespace moe::app
