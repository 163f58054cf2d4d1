#include <libxml/xmlversion.h>

// Debian's libxml2 is built with ICU, and its encoding header then pulls in the
// system ICU headers, which clash with the ICU copy inside swift-corelibs-foundation.
// tapedeck never touches the ICU converter fields, so hide them.
#undef LIBXML_ICU_ENABLED

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>
#include <libxml/c14n.h>

// xmlFree is a global function pointer, which Swift 6 treats as shared mutable
// state, so call it through a function.
static inline void tapedeck_xml_free(void *pointer) {
    xmlFree(pointer);
}
