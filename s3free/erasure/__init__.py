"""The Reed-Solomon codec behind one small interface."""

from s3free.erasure.codec import ReedSolomon, TooFewShards

__all__ = ["ReedSolomon", "TooFewShards"]
