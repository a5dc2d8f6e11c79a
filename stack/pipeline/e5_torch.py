"""The BERT encoder of multilingual-e5-small as torch modules, filled from ``E5Weights``.

Kept apart from ``e5_engine`` so that importing the engine (and encoding a query) never imports
torch.  Input is the token embeddings (looked up from their 4-bit rows by ``E5Weights``) and a
mask of real tokens; output is the mean of the last hidden state over real tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stack.pipeline.e5_weights import E5Weights


class _Layer(nn.Module):
    def __init__(self, hidden: int, ffn: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attention_norm(x + self.attention_out(context.transpose(1, 2).reshape(batch, length, hidden)))
        return self.output_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class E5Encoder(nn.Module):
    def __init__(self, hidden: int, layers: int, heads: int, ffn: int, positions: int, eps: float) -> None:
        super().__init__()
        self.register_buffer("positions", torch.zeros(positions, hidden))
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(_Layer(hidden, ffn, heads, eps) for _ in range(layers))

    @classmethod
    def from_weights(cls, weights: E5Weights) -> E5Encoder:
        t = {name: torch.from_numpy(array) for name, array in weights.tensors.items()}
        model = cls(weights.hidden, weights.layers, weights.heads, weights.ffn, weights.max_positions, weights.eps)
        with torch.no_grad():
            # Token type 0 for every token: its row is added to every position once, here.
            model.positions.copy_(t["emb.pos"] + t["emb.type"][:weights.hidden])
            model.embedding_norm.weight.copy_(t["emb.ln.w"])
            model.embedding_norm.bias.copy_(t["emb.ln.b"])
            for i, layer in enumerate(model.layers):
                def get(name: str, i: int = i) -> torch.Tensor:
                    return t[f"l{i}.{name}"]

                layer.qkv.weight.copy_(torch.cat([get("q.w"), get("k.w"), get("v.w")]))
                layer.qkv.bias.copy_(torch.cat([get("q.b"), get("k.b"), get("v.b")]))
                for module, prefix in ((layer.attention_out, "ao"), (layer.ffn_in, "fi"), (layer.ffn_out, "fo")):
                    module.weight.copy_(get(f"{prefix}.w"))
                    module.bias.copy_(get(f"{prefix}.b"))
                for norm, prefix in ((layer.attention_norm, "aln"), (layer.output_norm, "oln")):
                    norm.weight.copy_(get(f"{prefix}.w"))
                    norm.bias.copy_(get(f"{prefix}.b"))
        return model

    def forward(self, embedded: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.embedding_norm(embedded + self.positions[: embedded.shape[1]])
        mask = keep[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        weights = keep.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1)
