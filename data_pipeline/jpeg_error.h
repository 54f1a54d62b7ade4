#pragma once
// Internal to data_pipeline (image_decode.cc, decode_crop.cc, image_encode.cc): libjpeg error
// handling. libjpeg's default handler calls exit(); this one records the message and longjmps
// back to the caller's setjmp(err->jump), whose frame holds no C++ objects that need unwinding.

#include <cstddef>
#include <cstdint>
#include <cstdio>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <csetjmp>

namespace tessera::data {

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

inline void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

inline void jpeg_silent(j_common_ptr) {}

// The error manager for a codec's `cinfo.err`: fatal errors longjmp to err->jump with the message
// in err->message. `silent`: warnings are dropped (the decoders: corrupt-data warnings become
// errors only if fatal; the packer refused files with warnings); else libjpeg prints them.
inline jpeg_error_mgr* jpeg_error_manager(JpegError* err, bool silent) {
  jpeg_error_mgr* mgr = jpeg_std_error(&err->mgr);
  mgr->error_exit = jpeg_error_exit;
  if (silent) mgr->output_message = jpeg_silent;
  return mgr;
}

// Starts decoding `size` bytes at `data`: creates `cinfo` and reads the header. Called after
// setjmp(err->jump) in the caller's frame (it may jump there).
inline void jpeg_open_memory(jpeg_decompress_struct* cinfo, const uint8_t* data, size_t size) {
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
}

}  // namespace tessera::data
