// Layering test input: the checker must not use the reference engine. This
// file, compiled with thinkit_check's include path, must fail to compile.
#include "engine/thin_pool.h"
