#version 330 core
// One screen-aligned quad per draw, its corners from gl_VertexID (no vertex buffer): the
// heatmaps and the 2D mixture are each one rectangle of ImGui's screen space.
uniform vec4 u_rect;     // x0, y0, x1, y1 in ImGui pixels (origin top-left)
uniform vec2 u_display;  // ImGui display size in pixels
out vec2 v_uv;           // 0..1 across the rectangle, (0, 0) at its top-left

void main() {
    vec2 corner = vec2(float(gl_VertexID & 1), float((gl_VertexID >> 1) & 1));
    vec2 pos = mix(u_rect.xy, u_rect.zw, corner);
    v_uv = corner;
    gl_Position = vec4(pos.x / u_display.x * 2.0 - 1.0, 1.0 - pos.y / u_display.y * 2.0, 0.0, 1.0);
}
