package controllers

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/atlas-platform/atlas-operator/consumer/kafkaconn"
)

// AtlasConsumers on the same brokers share one Kafka client; it is closed with the last
// of them, and a consumer moving to other brokers moves to another client.
func TestLagReaderSharesOneClientPerConnection(t *testing.T) {
	r := &KafkaLagReader{}
	defer r.Close()
	same := kafkaconn.Config{Brokers: []string{"kafka-0:9092"}, ClientID: "atlas-operator"}
	other := kafkaconn.Config{Brokers: []string{"kafka-b:9092"}, ClientID: "atlas-operator"}
	keys := make([]types.NamespacedName, 20)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: "ns", Name: string(rune('a' + i))}
		if _, err := r.client(keys[i], same); err != nil { // creating a client does not dial
			t.Fatal(err)
		}
	}
	if n := r.Clients(); n != 1 {
		t.Fatalf("20 consumers on one connection hold %d clients, want 1", n)
	}
	if _, err := r.client(keys[0], other); err != nil {
		t.Fatal(err)
	}
	if n := r.Clients(); n != 2 {
		t.Fatalf("after one consumer moved to other brokers: %d clients, want 2", n)
	}
	for _, k := range keys[1:] {
		r.Forget(k)
	}
	if n := r.Clients(); n != 1 {
		t.Fatalf("after the 19 left: %d clients, want the other connection's 1", n)
	}
	r.Forget(keys[0])
	if n := r.Clients(); n != 0 {
		t.Fatalf("after all left: %d clients, want 0", n)
	}
}

// A referenced Secret's data is kept only while some AtlasConsumer references it.
func TestSecretDataGoesWithTheLastReference(t *testing.T) {
	c := &secretCache{}
	pg := types.NamespacedName{Namespace: "ns", Name: "pg"}
	search := types.NamespacedName{Namespace: "ns", Name: "search"}
	c.use(types.NamespacedName{Namespace: "ns", Name: "audit"}, []types.NamespacedName{pg})
	c.use(types.NamespacedName{Namespace: "ns", Name: "indexer"}, []types.NamespacedName{pg, search})
	c.entries = map[types.NamespacedName]cachedSecret{pg: {data: map[string][]byte{"dsn": []byte("x")}}, search: {}}
	c.use(types.NamespacedName{Namespace: "ns", Name: "indexer"}, []types.NamespacedName{pg}) // stops using search
	if _, ok := c.entries[search]; ok || c.held() != 1 {
		t.Fatalf("search's data kept after its last reference went (%d held)", c.held())
	}
	c.forget(types.NamespacedName{Namespace: "ns", Name: "audit"})
	if c.held() != 1 {
		t.Fatal("pg's data dropped while the indexer still references it")
	}
	c.forget(types.NamespacedName{Namespace: "ns", Name: "indexer"})
	if c.held() != 0 {
		t.Fatalf("%d Secrets' data kept after every consumer is gone", c.held())
	}
}

// failingReader fails every read: the lookup failure the Secret controller must return.
type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("the cache is not synced")
}

// A failed lookup of the AtlasConsumers using a changed Secret is returned (the Secret
// is retried with backoff), not logged and dropped.
func TestSecretLookupFailureIsRetried(t *testing.T) {
	f := &secretFanout{reader: failingReader{}, wake: make(chan event.GenericEvent, 1)}
	res, err := f.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "pg"}})
	if err == nil || !strings.Contains(err.Error(), "Secret pg") || res != (ctrl.Result{}) {
		t.Fatalf("Reconcile = %+v, %v; want the lookup error alone", res, err)
	}
}

// No Reconcile returns a Result together with an error: controller-runtime ignores the
// Result then, so a requeue the code asked for would silently not happen.
func TestNoReconcileReturnsAResultWithAnError(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fn, ok := n.(*ast.FuncDecl)
			if !ok || fn.Body == nil || fn.Type.Results == nil || len(fn.Type.Results.List) != 2 {
				return true
			}
			if sel, ok := fn.Type.Results.List[0].Type.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Result" {
				return true
			}
			checked++
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if _, nested := n.(*ast.FuncLit); nested {
					return false
				}
				ret, ok := n.(*ast.ReturnStmt)
				if !ok || len(ret.Results) != 2 {
					return true
				}
				lit, isLit := ret.Results[0].(*ast.CompositeLit)
				nilErr := false
				if id, ok := ret.Results[1].(*ast.Ident); ok && id.Name == "nil" {
					nilErr = true
				}
				if isLit && len(lit.Elts) > 0 && !nilErr {
					t.Errorf("%s: %s returns a Result with fields together with an error", fset.Position(ret.Pos()), fn.Name.Name)
				}
				return true
			})
			return true
		})
	}
	if checked < 3 {
		t.Fatalf("checked %d functions returning a ctrl.Result, expected the reconcilers", checked)
	}
}
