// fuzz_reader: xml::StanzaReader over a byte stream cut into chunks.
//
// Input: byte 0 seeds the chunk sizes, byte 1 picks the size limit, the rest is the stream.
// The stream is read twice, in chunks (draining next() after every feed) and in one piece; the
// elements returned and whether the reader failed must not depend on the chunking.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

using namespace esession;

namespace {

struct Outcome {
  std::vector<std::string> raw;  // the exact bytes of each element, in order
  std::vector<std::string> serialized;
  bool failed = false;
  bool clean_end = false;
};

// drain calls next() until it wants more input or fails; returns false once failed.
bool drain(xml::StanzaReader& reader, Outcome& out) {
  for (;;) {
    auto r = reader.next();
    if (!r) {
      out.failed = true;
      // A failed reader stays failed.
      fuzz::check(!reader.next(), "reader recovered after an error");
      return false;
    }
    if (!r.value())
      return true;
    out.raw.push_back(reader.raw());
    out.serialized.push_back(xml::serialize(*r.value()));
  }
}

Outcome read_chunked(std::string_view stream, size_t max, uint8_t seed) {
  Outcome out;
  xml::StanzaReader reader(std::string(xml::kNsClient), max);
  fuzz::SeededRandom rng(seed);
  size_t pos = 0;
  bool ok = true;
  while (ok && pos < stream.size()) {
    uint64_t w = rng.next_word();
    // Mostly tiny chunks (boundaries inside tags and markup), sometimes large ones.
    size_t len = (w & 7) == 0 ? 1 + (w >> 8) % 4096 : 1 + (w >> 8) % 16;
    len = std::min(len, stream.size() - pos);
    reader.feed(stream.substr(pos, len));
    pos += len;
    ok = drain(reader, out);
  }
  reader.finish();
  if (ok)
    drain(reader, out);
  out.clean_end = reader.at_clean_end();
  return out;
}

Outcome read_whole(std::string_view stream, size_t max) {
  Outcome out;
  xml::StanzaReader reader(std::string(xml::kNsClient), max);
  reader.feed(stream);
  if (drain(reader, out)) {
    reader.finish();
    drain(reader, out);
  }
  out.clean_end = reader.at_clean_end();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2)
    return 0;
  uint8_t seed = data[0];
  // A small limit (32 .. 8160 bytes) half of the time, so that the size checks are reached.
  size_t max = (data[1] & 0x80) ? size_t{1} << 20 : 32 + size_t{data[1]} * 64;
  std::string_view stream = fuzz::as_text(data + 2, size - 2);

  Outcome chunked = read_chunked(stream, max, seed);
  Outcome whole = read_whole(stream, max);
  fuzz::check(chunked.failed == whole.failed, "chunking changed whether the stream is refused");
  fuzz::check(chunked.raw == whole.raw, "chunking changed the elements returned");
  fuzz::check(chunked.serialized == whole.serialized, "chunking changed the parsed elements");
  fuzz::check(chunked.clean_end == whole.clean_end, "chunking changed at_clean_end");
  fuzz::check(!whole.clean_end || !whole.failed, "clean end after an error");
  for (const auto& raw : whole.raw)
    fuzz::check(raw.size() <= max, "an element over the size limit was returned");
  return 0;
}
