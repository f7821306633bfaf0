module jobrelay.local/bench/httpgen

go 1.19
