#!/usr/bin/env -S node --initial-heap-size=64
import '../dist/src/cli/main.js'
