"""Neural network modules: MoE, relational attention, heads and the SpTGNN member."""

from sptgnn.nn.heads import HeteroscedasticHead
from sptgnn.nn.model import ModelOutput, SpTGNN
from sptgnn.nn.moe import SparseMoE
from sptgnn.nn.relational_attention import RelationalAttentionLayer

__all__ = ["SpTGNN", "ModelOutput", "SparseMoE", "RelationalAttentionLayer", "HeteroscedasticHead"]
