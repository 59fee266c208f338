#version 330 core
// A heatmap from a float texture: one texel per cell (row = token or layer, column = expert),
// each pixel looks up its cell and colours it. Mode 0: value / u_value_max on a viridis ramp
// (the same stops as gl_shaders.cpp's viridis(), which draws the legend). Mode 1: the value is
// an expert index, coloured from the palette texture; negative means idle.
uniform sampler2D u_values;   // (rows, cols) R32F
uniform sampler2D u_palette;  // (1, n_colors) RGBA8, expert colours
uniform int u_mode;
uniform float u_value_max;
uniform vec2 u_cell_px;       // one cell's size on screen, in pixels
uniform float u_gap_px;       // dark gap at the right/bottom of every cell
uniform vec4 u_gap_color;
in vec2 v_uv;
out vec4 frag;

vec3 viridis(float t) {
    const vec3 c0 = vec3(68.0, 1.0, 84.0) / 255.0;
    const vec3 c1 = vec3(59.0, 82.0, 139.0) / 255.0;
    const vec3 c2 = vec3(33.0, 145.0, 140.0) / 255.0;
    const vec3 c3 = vec3(94.0, 201.0, 98.0) / 255.0;
    const vec3 c4 = vec3(253.0, 231.0, 37.0) / 255.0;
    float x = clamp(t, 0.0, 1.0) * 4.0;
    if (x < 1.0) return mix(c0, c1, x);
    if (x < 2.0) return mix(c1, c2, x - 1.0);
    if (x < 3.0) return mix(c2, c3, x - 2.0);
    return mix(c3, c4, x - 3.0);
}

void main() {
    ivec2 size = textureSize(u_values, 0);          // (cols, rows)
    vec2 cell_f = v_uv * vec2(size);
    ivec2 cell = clamp(ivec2(floor(cell_f)), ivec2(0), size - 1);
    vec2 in_cell = fract(cell_f) * u_cell_px;       // pixels into the cell
    if (u_gap_px > 0.0 && (in_cell.x >= u_cell_px.x - u_gap_px || in_cell.y >= u_cell_px.y - u_gap_px)) {
        frag = u_gap_color;
        return;
    }
    float v = texelFetch(u_values, cell, 0).r;
    if (u_mode == 1) {
        int n_colors = textureSize(u_palette, 0).x;
        if (v < 0.0) frag = vec4(70.0 / 255.0, 70.0 / 255.0, 78.0 / 255.0, 1.0);
        else frag = vec4(texelFetch(u_palette, ivec2(int(v) % n_colors, 0), 0).rgb, 1.0);
    } else {
        frag = vec4(viridis(v / max(u_value_max, 1e-9)), 1.0);
    }
}
