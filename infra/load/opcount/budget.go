package opcount

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Budget is one component's Firestore operations per message, as committed in
// docs/perf/ops.json: the tests that count them compare with it, and the cost
// command prices it.
type Budget struct {
	Writes  int64  `json:"writes"`
	Reads   int64  `json:"reads"`
	Creates int64  `json:"creates"`
	Test    string `json:"test"`
}

// BudgetsFile is docs/perf/ops.json in this checkout.
func BudgetsFile() string {
	_, here, _, _ := runtime.Caller(0) // infra/load/opcount/budget.go
	return filepath.Join(filepath.Dir(here), "..", "..", "..", "docs", "perf", "ops.json")
}

// ReadBudgets reads the budgets from path.
func ReadBudgets(path string) (map[string]Budget, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("operation budgets: %w", err)
	}
	var f struct {
		Budgets map[string]Budget `json:"budgets"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("operation budgets %s: %w", path, err)
	}
	return f.Budgets, nil
}

// BudgetFor returns the committed budget of component, for a test to compare its
// counts with.
func BudgetFor(component string) (Budget, error) {
	bs, err := ReadBudgets(BudgetsFile())
	if err != nil {
		return Budget{}, err
	}
	b, ok := bs[component]
	if !ok {
		return Budget{}, fmt.Errorf("no budget for %q in %s", component, BudgetsFile())
	}
	return b, nil
}
