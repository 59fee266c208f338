// The dependency rule of STYLE.md §1: core/ is the headless engine and never includes a
// graphical header, so a headless tool or a server can link it alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

namespace fs = std::filesystem;

TEST(Layering, CoreIncludesNoGraphicalHeader) {
    const fs::path core = fs::path(MOE_SOURCE_DIR) / "core";
    ASSERT_TRUE(fs::is_directory(core)) << core;
    const std::regex forbidden(R"(^\s*#\s*include\s*[<"](imgui|GLFW/|GL/|glad/|backends/imgui|imgui_impl)[^>"]*[>"])",
                               std::regex::icase);
    int n_files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(core)) {
        if (!entry.is_regular_file()) continue;
        const std::string ext = entry.path().extension().string();
        if (ext != ".h" && ext != ".hpp" && ext != ".cpp" && ext != ".cu" && ext != ".cuh") continue;
        ++n_files;
        std::ifstream in(entry.path());
        std::string line;
        int line_no = 0;
        while (std::getline(in, line)) {
            ++line_no;
            EXPECT_FALSE(std::regex_search(line, forbidden))
                << entry.path() << ":" << line_no << " includes a graphical header: " << line;
        }
    }
    EXPECT_GT(n_files, 0) << "no source files found under " << core;
}

TEST(Layering, DetectorCatchesAGraphicalInclude) {
    // The regex above must actually fire on the includes it is meant to forbid.
    const std::regex forbidden(R"(^\s*#\s*include\s*[<"](imgui|GLFW/|GL/|glad/|backends/imgui|imgui_impl)[^>"]*[>"])",
                               std::regex::icase);
    EXPECT_TRUE(std::regex_search(std::string("#include <imgui.h>"), forbidden));
    EXPECT_TRUE(std::regex_search(std::string("  #include \"GLFW/glfw3.h\""), forbidden));
    EXPECT_TRUE(std::regex_search(std::string("#include <GL/gl.h>"), forbidden));
    EXPECT_FALSE(std::regex_search(std::string("#include <Eigen/Dense>"), forbidden));
}
