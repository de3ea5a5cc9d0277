// Being written (issue 2).
#include "app/commands.h"
