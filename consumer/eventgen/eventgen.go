// Package eventgen generates realistic synthetic Atlas domain-event traffic: collections
// are created and renamed, members join and change roles, items are created, edited and
// deleted inside collections, and jobs run. Every event is a valid v1 envelope and each
// follows from the ones before it (an item is updated only after it was created, and
// never after it was deleted).
package eventgen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

// Generator produces a stream of consistent events. It is not safe for concurrent use.
type Generator struct {
	rng         *rand.Rand
	users       []uuid.UUID
	collections []*collection
	jobs        []uuid.UUID
	now         func() time.Time
}

type collection struct {
	id      uuid.UUID
	name    string
	members map[uuid.UUID]membership
	items   []*item
}

type membership struct {
	id   uuid.UUID
	role string
}

type item struct {
	id      uuid.UUID
	title   string
	version int
}

// New returns a generator; the same seed yields the same sequence of event kinds and
// payloads (event ids are fresh UUIDv7s).
func New(seed uint64) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Now}
	for range 25 {
		g.users = append(g.users, g.uuid())
	}
	return g
}

func (g *Generator) uuid() uuid.UUID {
	var id uuid.UUID
	for i := range id {
		id[i] = byte(g.rng.UintN(256))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

func (g *Generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

// Next returns the next event.
func (g *Generator) Next() (*event.Envelope, error) {
	if len(g.collections) == 0 {
		return g.collectionCreated()
	}
	c := g.collections[g.rng.IntN(len(g.collections))]
	switch p := g.rng.IntN(1000); {
	case p < 30:
		return g.collectionCreated()
	case p < 50:
		return g.collectionUpdated(c)
	case p < 53 && len(c.items) == 0 && len(g.collections) > 1:
		return g.collectionDeleted(c)
	case p < 110:
		return g.membershipAdded(c)
	case p < 130 && len(c.members) > 0:
		return g.membershipRoleChanged(c)
	case p < 140 && len(c.members) > 0:
		return g.membershipRemoved(c)
	case p < 170:
		return g.jobCreated(c)
	case p < 220 && len(g.jobs) > 0:
		return g.jobUpdated(c)
	case p < 520 || len(c.items) == 0:
		return g.itemCreated(c)
	case p < 900:
		return g.itemUpdated(c)
	default:
		return g.itemDeleted(c)
	}
}

func (g *Generator) newEvent(typ event.Type, entity event.Entity, data any) (*event.Envelope, error) {
	opts := []event.Option{event.WithOccurredAt(g.now())}
	if g.rng.IntN(10) > 0 {
		opts = append(opts, event.WithActor(g.users[g.rng.IntN(len(g.users))]))
	}
	if g.rng.IntN(5) > 0 {
		opts = append(opts, event.WithTrace(fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64())))
	}
	env, err := event.New(typ, entity, data, opts...)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", typ, err)
	}
	return env, nil
}

func (c *collection) entity(typ event.EntityType, id uuid.UUID) event.Entity {
	col := c.id
	return event.Entity{Type: typ, ID: id, CollectionID: &col}
}

func (g *Generator) collectionCreated() (*event.Envelope, error) {
	c := &collection{id: g.uuid(), name: g.pick(adjectives) + " " + g.pick(topics), members: map[uuid.UUID]membership{}}
	g.collections = append(g.collections, c)
	return g.newEvent(event.CollectionCreated, event.Entity{Type: event.EntityCollection, ID: c.id},
		map[string]any{"name": c.name, "visibility": g.pick([]string{"private", "team", "public"})})
}

func (g *Generator) collectionUpdated(c *collection) (*event.Envelope, error) {
	c.name = g.pick(adjectives) + " " + g.pick(topics)
	return g.newEvent(event.CollectionUpdated, event.Entity{Type: event.EntityCollection, ID: c.id},
		map[string]any{"name": c.name})
}

func (g *Generator) collectionDeleted(c *collection) (*event.Envelope, error) {
	for i, x := range g.collections {
		if x == c {
			g.collections = append(g.collections[:i], g.collections[i+1:]...)
			break
		}
	}
	return g.newEvent(event.CollectionDeleted, event.Entity{Type: event.EntityCollection, ID: c.id}, map[string]any{})
}

func (g *Generator) membershipAdded(c *collection) (*event.Envelope, error) {
	user := g.users[g.rng.IntN(len(g.users))]
	if _, ok := c.members[user]; ok {
		return g.membershipRoleChanged(c)
	}
	m := membership{id: g.uuid(), role: g.pick(roles)}
	c.members[user] = m
	return g.newEvent(event.MembershipAdded, c.entity(event.EntityMembership, m.id),
		map[string]any{"user_id": user, "role": m.role})
}

func (g *Generator) anyMember(c *collection) (uuid.UUID, membership) {
	n := g.rng.IntN(len(c.members))
	for user, m := range c.members {
		if n == 0 {
			return user, m
		}
		n--
	}
	panic("unreachable: anyMember on an empty collection")
}

func (g *Generator) membershipRoleChanged(c *collection) (*event.Envelope, error) {
	user, m := g.anyMember(c)
	previous := m.role
	m.role = g.pick(roles)
	c.members[user] = m
	return g.newEvent(event.MembershipRoleChanged, c.entity(event.EntityMembership, m.id),
		map[string]any{"user_id": user, "role": m.role, "previous_role": previous})
}

func (g *Generator) membershipRemoved(c *collection) (*event.Envelope, error) {
	user, m := g.anyMember(c)
	delete(c.members, user)
	return g.newEvent(event.MembershipRemoved, c.entity(event.EntityMembership, m.id), map[string]any{"user_id": user})
}

func (g *Generator) itemCreated(c *collection) (*event.Envelope, error) {
	it := &item{id: g.uuid(), title: g.title(), version: 1}
	c.items = append(c.items, it)
	return g.newEvent(event.ItemCreated, c.entity(event.EntityItem, it.id), map[string]any{
		"title":      it.title,
		"content":    g.content(),
		"source_url": fmt.Sprintf("https://%s/%s/%d", g.pick(hosts), g.pick(topics), g.rng.IntN(100000)),
		"version":    it.version,
	})
}

func (g *Generator) itemUpdated(c *collection) (*event.Envelope, error) {
	it := c.items[g.rng.IntN(len(c.items))]
	it.version++
	data := map[string]any{"version": it.version}
	if g.rng.IntN(2) == 0 {
		it.title = g.title()
		data["title"] = it.title
	} else {
		data["content"] = g.content()
	}
	return g.newEvent(event.ItemUpdated, c.entity(event.EntityItem, it.id), data)
}

func (g *Generator) itemDeleted(c *collection) (*event.Envelope, error) {
	i := g.rng.IntN(len(c.items))
	it := c.items[i]
	c.items = append(c.items[:i], c.items[i+1:]...)
	return g.newEvent(event.ItemDeleted, c.entity(event.EntityItem, it.id), map[string]any{"version": it.version + 1})
}

func (g *Generator) jobCreated(c *collection) (*event.Envelope, error) {
	id := g.uuid()
	g.jobs = append(g.jobs, id)
	if len(g.jobs) > 200 {
		g.jobs = g.jobs[1:]
	}
	return g.newEvent(event.JobCreated, c.entity(event.EntityJob, id),
		map[string]any{"kind": g.pick([]string{"import", "export", "reindex", "thumbnail"}), "status": "queued"})
}

func (g *Generator) jobUpdated(c *collection) (*event.Envelope, error) {
	id := g.jobs[g.rng.IntN(len(g.jobs))]
	return g.newEvent(event.JobUpdated, event.Entity{Type: event.EntityJob, ID: id},
		map[string]any{"status": g.pick([]string{"running", "succeeded", "failed"}), "progress": g.rng.Float64()})
}

func (g *Generator) title() string {
	return g.pick(adjectives) + " " + g.pick(topics) + " " + g.pick(kinds)
}

func (g *Generator) content() string {
	n := 8 + g.rng.IntN(40)
	buf := make([]byte, 0, n*8)
	for i := range n {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, g.pick(words)...)
	}
	return string(buf)
}

var (
	adjectives = []string{"Quarterly", "Annual", "Draft", "Final", "Internal", "Customer", "Regional", "Weekly", "Archived", "Shared"}
	topics     = []string{"finance", "research", "marketing", "legal", "design", "support", "roadmap", "hiring", "security", "sales"}
	kinds      = []string{"report", "notes", "summary", "plan", "review", "memo", "brief", "analysis", "proposal", "checklist"}
	roles      = []string{"viewer", "editor", "owner"}
	hosts      = []string{"docs.example.com", "wiki.example.org", "drive.example.net", "files.example.com"}
	words      = []string{"revenue", "growth", "customer", "pipeline", "latency", "index", "search", "audit", "policy", "budget",
		"forecast", "margin", "release", "incident", "storage", "quality", "team", "region", "contract", "milestone"}
)
