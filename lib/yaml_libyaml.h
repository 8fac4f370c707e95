/*
 * yaml_libyaml.h — libyaml's own <yaml.h>, for lib/yaml.c only.
 *
 * The build puts lib/ on the include path, so a plain #include <yaml.h> finds our lib/yaml.h.
 * #include_next (a GCC/Clang extension) continues the search past lib/ and reaches the system
 * header. Only yaml.c includes this; everything else uses fa_yaml_* from yaml.h.
 */
#ifndef FA_YAML_LIBYAML_H
#define FA_YAML_LIBYAML_H

#include_next <yaml.h>

#endif
