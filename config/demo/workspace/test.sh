#!/bin/sh
# Tests for calc.sh. Prints one line per failure and a closing "N passed, M failed" line; exits 1 on failure.
passed=0
failed=0

check() { # name expected actual
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $1: expected $2, got '$3'"
    fi
}

if [ ! -f calc.sh ]; then
    echo "FAIL calc.sh does not exist"
    echo "0 passed, 1 failed"
    exit 1
fi

check "add 2 3" 5 "$(sh calc.sh add 2 3 2>&1)"
check "add -1 1" 0 "$(sh calc.sh add -1 1 2>&1)"
check "mul 4 5" 20 "$(sh calc.sh mul 4 5 2>&1)"
check "mul 0 7" 0 "$(sh calc.sh mul 0 7 2>&1)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
