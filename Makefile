# Shortcuts for the scripts the README names; the scripts are the source of truth.
.PHONY: run test build format format-check bench clean

run:
	scripts/run

test:
	scripts/test

build:
	scripts/install-deps build
	cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTOMPD_WERROR=ON
	cmake --build build/dev

format format-check: build
	cmake --build build/dev --target $@

bench:
	cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTOMPD_BUILD_BENCH=ON
	cmake --build build/release
	build/release/bench/stomp_codec_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

clean:
	rm -rf build
