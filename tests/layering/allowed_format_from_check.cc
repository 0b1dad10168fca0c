// Layering test input, the control: the checker may use the format layer.
// Compiled with thinkit_check's include path, this must compile (so the
// forbidden cases fail for the right reason).
#include "thin/format/superblock.h"
