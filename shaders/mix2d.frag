#version 330 core
// The 2D mixture of experts (core/models/mix2d.h, Jacobs et al. 1991) drawn per pixel from the
// live weights: every pixel is a point (x, y) of [-1, 1]^2, routed by the linear router exactly
// as moe::route() gates it for the scheme, and run through the chosen experts' tanh MLPs.
// u_show 0: the partition: the top expert's colour, brighter where its gate is larger, with a
// white border where the top expert changes; 1: the prediction y_hat = sum_chosen g_i E_i(x, y)
// on a diverging ramp (blue < 0 < orange).
const int MAX_E = 32;
const int MAX_H = 8;
uniform int u_n_experts;
uniform int u_hidden;
uniform int u_k;
uniform int u_gate_kind;       // see gl_shaders.h Mix2dUniforms::gate_kind
uniform float u_scaling;       // routed scaling factor
// Packed four to a vec4 so the arrays stay within GL 3.3's guaranteed uniform space.
uniform vec4 u_router[MAX_E];          // w_x, w_y, bias, selection bias (DeepSeek-V3 kind only)
uniform vec4 u_unit[MAX_E * MAX_H];    // hidden unit j of expert e: w1_x, w1_y, b1, w2
uniform float u_b2[MAX_E];
uniform sampler2D u_palette;   // expert colours
uniform int u_show;
uniform vec2 u_px;             // the picture's size in pixels (for the border width)
in vec2 v_uv;
out vec4 frag;

float expert_out(int e, vec2 p) {
    float y = u_b2[e];
    for (int j = 0; j < u_hidden; ++j) {
        int i = e * MAX_H + j;
        y += u_unit[i].w * tanh(dot(u_unit[i].xy, p) + u_unit[i].z);
    }
    return y;
}

// The top expert (largest gate among the chosen) and y_hat at point p.
void route_point(vec2 p, out int top, out float top_gate, out float y_hat) {
    float h[MAX_E];
    float prob[MAX_E];
    float score[MAX_E];
    bool chosen[MAX_E];
    float m = -1e30;
    for (int e = 0; e < u_n_experts; ++e) {
        h[e] = dot(u_router[e].xy, p) + u_router[e].z;
        m = max(m, h[e]);
        chosen[e] = false;
    }
    float z = 0.0;
    for (int e = 0; e < u_n_experts; ++e) z += exp(h[e] - m);
    for (int e = 0; e < u_n_experts; ++e) {
        prob[e] = u_gate_kind == 4 ? 1.0 / (1.0 + exp(-h[e])) : exp(h[e] - m) / z;
        score[e] = u_gate_kind == 2 ? h[e] : (u_gate_kind == 4 ? prob[e] + u_router[e].w : prob[e]);
    }
    int k = u_gate_kind == 0 ? u_n_experts : u_k;
    // Top-K by score, ties to the lower index (as moe::route()).
    for (int r = 0; r < k; ++r) {
        int best = -1;
        for (int e = 0; e < u_n_experts; ++e)
            if (!chosen[e] && (best < 0 || score[e] > score[best])) best = e;
        chosen[best] = true;
    }
    float norm = 0.0;
    float cm = -1e30;
    for (int e = 0; e < u_n_experts; ++e)
        if (chosen[e]) { norm += prob[e]; cm = max(cm, h[e]); }
    float mz = 0.0;
    if (u_gate_kind == 2)
        for (int e = 0; e < u_n_experts; ++e)
            if (chosen[e]) mz += exp(h[e] - cm);
    top = 0;
    top_gate = -1.0;
    y_hat = 0.0;
    for (int e = 0; e < u_n_experts; ++e) {
        if (!chosen[e]) continue;
        float g = prob[e];
        if (u_gate_kind == 2) g = exp(h[e] - cm) / mz;
        else if (u_gate_kind == 3 || u_gate_kind == 4) g = prob[e] / norm;
        g *= u_scaling;
        if (g > top_gate) { top_gate = g; top = e; }
        y_hat += g * expert_out(e, p);
    }
}

vec3 diverging(float v) {  // blue (-1) .. near-black (0) .. orange (+1)
    float t = clamp(v, -1.5, 1.5) / 1.5;
    return t < 0.0 ? mix(vec3(0.06), vec3(0.34, 0.71, 0.91), -t) : mix(vec3(0.06), vec3(0.90, 0.62, 0.0), t);
}

void main() {
    vec2 p = vec2(v_uv.x * 2.0 - 1.0, 1.0 - v_uv.y * 2.0);
    int top;
    float gate;
    float y_hat;
    route_point(p, top, gate, y_hat);
    int n_colors = textureSize(u_palette, 0).x;
    vec3 col = texelFetch(u_palette, ivec2(top % n_colors, 0), 0).rgb;
    if (u_show == 1) {
        frag = vec4(diverging(y_hat), 1.0);
        return;
    }
    vec3 shaded = col * (0.35 + 0.65 * clamp(gate, 0.0, 1.0));
    // Border: the point one pixel right or down has another top expert.
    vec2 d = 2.0 / max(u_px, vec2(1.0));
    int tx, ty;
    float gx, gy, yx, yy;
    route_point(p + vec2(d.x, 0.0), tx, gx, yx);
    route_point(p - vec2(0.0, d.y), ty, gy, yy);
    if (tx != top || ty != top) shaded = vec3(1.0);
    frag = vec4(shaded, 1.0);
}
