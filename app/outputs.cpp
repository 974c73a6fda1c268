// Writing the output files, all renamed into place together.
#include "outputs.hpp"

namespace bnorm::app {

void write_outputs(std::vector<PendingFile> done, const std::vector<std::pair<std::string, const Array*>>& outputs) {
    for (const auto& [path, array] : outputs)
        if (!path.empty()) done.push_back(write_array(path, *array));
    for (PendingFile& f : done) f.commit();
}

} // namespace bnorm::app
