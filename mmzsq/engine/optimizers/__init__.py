from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper
from .merged_groups_optim_wrapper_constructor import (
    MergedGroupsOptimWrapperConstructor, merge_param_groups)

__all__ = ['CPUAutocastOptimWrapper', 'MergedGroupsOptimWrapperConstructor',
           'merge_param_groups']
