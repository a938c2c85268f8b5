"""Data files of ``othermail cost``: ``aws_prices.json``, the AWS list prices it computes with."""
