/* placeholder until the CLI lands in this same series */
#include "log.h"
int main(void)
{
    fa_log_info("fasterapid " FA_VERSION);
    return 0;
}
