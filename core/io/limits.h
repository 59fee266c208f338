// The one table of input limits (issue 15): every reader of outside input checks against these,
// so a hostile or corrupt file gives a moe::Error instead of a crash, a hang or a runaway
// allocation. Each cap is far above anything real and far below what would hurt; a reader that
// needs a different bound says why next to its check.
#pragma once

#include <cstdint>

namespace moe {

// --- JSON (safetensors headers, model configs, HF config.json, lessons, tokenizer.json) ---
// Nesting depth of arrays and objects. nlohmann's parser is iterative, but dump(), copies and
// comparisons recurse, so a 10,000-deep array overflows the stack. Real files nest < 10 deep.
inline constexpr int kMaxJsonDepth = 64;
// Bytes of a config-sized JSON file (model .json, HF config.json, lesson). Real ones are a few
// KB; a config.json with a large id2label table still fits many times over.
inline constexpr uint64_t kMaxConfigBytes = 16u << 20;  // 16 MB
// Bytes of a tokenizer.json: o200k's is 28 MB; the largest real ones are well under 100 MB.
inline constexpr uint64_t kMaxTokenizerBytes = 512u << 20;  // 512 MB

// --- safetensors ---
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // 100 MB, as the reference implementation
inline constexpr uint64_t kMaxTensors = 1u << 20;        // tensors in one file (Mixtral-8x7B has ~1,000)
inline constexpr uint64_t kMaxTensorRank = 8;            // dims per shape
// Elements in one tensor: 2^34 (64 GiB as F32) is beyond any single weight of a real checkpoint.
inline constexpr uint64_t kMaxTensorElements = uint64_t{1} << 34;
// Bytes of one safetensors file. Hugging Face shards are up to ~5 GB (save_pretrained's default
// max_shard_size) and single-file checkpoints larger, so read_file's 4 GiB default is too small
// for them; what a checkpoint may take in RAM is checked against the machine before loading.
inline constexpr uint64_t kMaxSafetensorsFileBytes = uint64_t{64} << 30;  // 64 GiB

// --- model configs (HF config.json for the parameter counter, the byte LM's .json) ---
// Upper bounds no real model reaches, which keep every parameter-count product within reach of
// a clear 64-bit overflow error rather than nonsense. What is actually allocated is bounded by
// the weights file's size, not by these.
inline constexpr int64_t kMaxModelWidth = int64_t{1} << 22;  // hidden sizes, FFN widths, ranks
inline constexpr int64_t kMaxVocab = int64_t{1} << 24;
inline constexpr int64_t kMaxLayers = 10000;
inline constexpr int64_t kMaxHeads = int64_t{1} << 14;
inline constexpr int64_t kMaxExperts = int64_t{1} << 20;  // a config the parameter counter may count
// A Hugging Face checkpoint that is loaded and run (core/models/hf/): tighter than what the
// counter counts, still above every released model (DeepSeek-V3: 7168 wide, 129,280 tokens,
// 61 layers); what is allocated is bounded by the weights file, these keep the products small.
inline constexpr int64_t kMaxLoadedWidth = int64_t{1} << 20;  // hidden sizes, FFN widths, ranks
inline constexpr int64_t kMaxLoadedVocab = int64_t{1} << 22;
inline constexpr int64_t kMaxLoadedLayers = 1024;
// Experts of one MoE layer that runs (MoeLayerConfig, the HF loader): DeepSeek-V3 has 256, so 4096 leaves room;
// the weights, not this, are what a desktop must hold.
inline constexpr int kMaxLayerExperts = 4096;
// A capacity factor above this is dropless in all but name (capacity >= T for any T we route).
inline constexpr double kMaxCapacityFactor = 1e6;
// Noisy top-K's noise_scale (1 = the paper): beyond this the router's logits are noise alone,
// and h + eps * softplus(W_noise x) * noise_scale heads for float's overflow (fuzz_router).
inline constexpr float kMaxNoiseScale = 1e6f;

// --- lessons ---
// (Tokens per text are bounded where the text is used: a forward takes at most the model's
// max_seq; a cap for the tokenizer's input belongs here once a reader needs one.)
inline constexpr int64_t kMaxLessonTrainSteps = 20000;  // training steps one lesson may ask for, all steps together
inline constexpr int64_t kMaxLessonExperts = 64;        // experts a lesson knob may set

}  // namespace moe
