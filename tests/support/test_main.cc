#include <gtest/gtest.h>

#include "core/threads.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  tessera::init_threads_from_env();
  return RUN_ALL_TESTS();
}
