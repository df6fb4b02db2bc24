/* Chemical element symbol -> atomic number Z (1..118). */
#ifndef MLNMR_ELEMENT_NUMBERS_H
#define MLNMR_ELEMENT_NUMBERS_H

#include <string>

namespace MLNMR {

/* Z of `symbol` (case-sensitive, e.g. "Al"), or 0 when it is no element symbol. */
int atomic_number(const std::string &symbol);

}    // namespace MLNMR

#endif
