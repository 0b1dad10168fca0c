// Layering test input: persistent-data must not use thin provisioning. This
// file, compiled with thinkit_pdata's include path, must fail to compile.
#include "thin/format/superblock.h"
