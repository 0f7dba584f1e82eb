"""What the BigDL and Torch7 readers share: both formats store Torch ``nn`` modules (BigDL's layers are
ports of Torch's), so one set of IR emitters (:mod:`.emit`), one activity type (:mod:`.activity`: a
tensor or a table of them) and one bounds-checked tensor view (:mod:`.tensors`) serve both. Neither
format's reader imports the other's; this package is no format and has no reader entry.
"""
