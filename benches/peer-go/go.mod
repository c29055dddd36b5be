module contrast-rs/benches/peer-go

go 1.22
