package workload

import (
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/internal/flagenv"
)

// Container, port and volume names and paths of the consumer pod.
const (
	ConsumerContainer = "consumer"
	MigrateContainer  = "migrate"
	MetricsPortName   = "http-metrics"
	MetricsPort       = names.HealthPort

	kafkaTLSVolume  = "kafka-tls"
	kafkaTLSDir     = "/etc/atlas/kafka-tls"
	kafkaSASLVolume = "kafka-sasl"
	kafkaSASLDir    = "/etc/atlas/kafka-sasl"
	searchTLSVolume = "search-tls"
	searchTLSDir    = "/etc/atlas/search-tls"
	tmpVolume       = "tmp"

	// Secret keys of spec.elasticsearch.credentialsSecretRef.
	ElasticsearchUsernameKey = "username"
	ElasticsearchPasswordKey = "password"
	ElasticsearchAPIKeyKey   = "apiKey"
)

// gracePeriod leaves the consumer its shutdown timeout to finish and commit the batch
// in flight, and some seconds to leave the group.
var gracePeriod = int64((names.DefaultShutdownTimeout + 10*time.Second) / time.Second)

// Deployment is the consumer Deployment: `atlas consume <mode>` configured from the
// spec through environment variables, Secret values as valueFrom references only, with
// the migrations as an init container when spec.postgres.runMigrations is true.
func Deployment(ac *atlasv1alpha1.AtlasConsumer, cfg Config) *appsv1.Deployment {
	annotations := maps.Clone(ac.Spec.Pod.Annotations)
	if cfg.SecretChecksum != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[SecretChecksumAnnotation] = cfg.SecretChecksum
	}
	var initContainers []corev1.Container
	if ac.Spec.Postgres.RunMigrations == nil || *ac.Spec.Postgres.RunMigrations {
		initContainers = []corev1.Container{migrateContainer(ac, cfg)}
	}
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      DeploymentName(ac),
			Namespace: ac.Namespace,
			Labels:    Labels(ac),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(cfg.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(ac)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(ac), Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName: ac.Spec.Pod.ServiceAccountName,
					// Consumers never call the Kubernetes API: no token in their pods (cloud
					// workload identity, if any, comes through its own projected volume).
					AutomountServiceAccountToken:  ptr.To(false),
					PriorityClassName:             ac.Spec.Pod.PriorityClassName,
					NodeSelector:                  ac.Spec.Pod.NodeSelector,
					Tolerations:                   ac.Spec.Pod.Tolerations,
					Affinity:                      ac.Spec.Pod.Affinity,
					TerminationGracePeriodSeconds: ptr.To(gracePeriod),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					InitContainers: initContainers,
					Containers:     []corev1.Container{consumerContainer(ac, cfg)},
					Volumes:        volumes(ac),
				},
			},
		},
	}
}

func image(ac *atlasv1alpha1.AtlasConsumer, cfg Config) string {
	if ac.Spec.Image != "" {
		return ac.Spec.Image
	}
	return cfg.Image
}

// containerSecurity is the "restricted" Pod Security Standard for a container.
func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func consumerContainer(ac *atlasv1alpha1.AtlasConsumer, cfg Config) corev1.Container {
	probe := func(path string, period, failures int32) *corev1.Probe {
		// Every number is given, defaults included, so the object read back compares
		// equal to the one built (see controllers.inSync).
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(MetricsPortName), Scheme: corev1.URISchemeHTTP}},
			TimeoutSeconds:   1,
			PeriodSeconds:    period,
			SuccessThreshold: 1,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            ConsumerContainer,
		Image:           image(ac, cfg),
		ImagePullPolicy: ac.Spec.ImagePullPolicy,
		Args:            []string{"consume", string(ac.Spec.Mode)},
		Env:             ConsumerEnv(ac),
		Ports:           []corev1.ContainerPort{{Name: MetricsPortName, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP}},
		// Readiness follows the dependencies (the consumer reports which one fails);
		// liveness only the process, so an outage never restarts pods in a loop.
		ReadinessProbe:  probe("/readyz", 5, 3),
		LivenessProbe:   probe("/healthz", 10, 6),
		Resources:       ac.Spec.Resources,
		SecurityContext: containerSecurity(),
		VolumeMounts:    volumeMounts(ac),
	}
}

func migrateContainer(ac *atlasv1alpha1.AtlasConsumer, cfg Config) corev1.Container {
	return corev1.Container{
		Name:            MigrateContainer,
		Image:           image(ac, cfg),
		ImagePullPolicy: ac.Spec.ImagePullPolicy,
		Args:            []string{"migrate", "up"},
		Env: []corev1.EnvVar{
			secretEnv(names.EnvPostgresDSN, &ac.Spec.Postgres.DSNSecretRef),
			value(names.FlagLogLevel, logLevel(ac)),
		},
		Resources:       ac.Spec.Resources,
		SecurityContext: containerSecurity(),
	}
}

func logLevel(ac *atlasv1alpha1.AtlasConsumer) string {
	if ac.Spec.LogLevel == "" {
		return "info"
	}
	return string(ac.Spec.LogLevel)
}

// ConsumerEnv is the consumer container's environment: every setting as the ATLAS_*
// variable of its flag, every secret as a valueFrom reference.
func ConsumerEnv(ac *atlasv1alpha1.AtlasConsumer) []corev1.EnvVar {
	k := ac.Spec.Kafka
	env := []corev1.EnvVar{
		value(names.FlagKafkaBrokers, joinComma(k.BootstrapServers)),
		{Name: flagenv.Name(names.FlagKafkaClientID), ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		value(names.FlagTopic, Topic(ac)),
		value(names.FlagGroup, GroupID(ac)),
		value(names.FlagStartOffset, startOffset(ac)),
	}
	if k.DeadLetterTopic != "" {
		env = append(env, value(names.FlagDeadLetterTopic, k.DeadLetterTopic))
	}
	if tls := k.TLS; tls != nil {
		env = append(env, value(names.FlagKafkaTLS, "true"))
		if tls.CASecretRef != nil {
			env = append(env, value(names.FlagKafkaTLSCAFile, kafkaTLSDir+"/ca.crt"))
		}
		if tls.CertSecretRef != nil {
			env = append(env, value(names.FlagKafkaTLSCertFile, kafkaTLSDir+"/tls.crt"),
				value(names.FlagKafkaTLSKeyFile, kafkaTLSDir+"/tls.key"))
		}
	}
	if sasl := k.SASL; sasl != nil {
		env = append(env, value(names.FlagKafkaSASLMechanism, string(sasl.Mechanism)))
		if sasl.UsernameSecretRef != nil && sasl.PasswordSecretRef != nil {
			env = append(env,
				secretEnv(flagenv.Name(names.FlagKafkaSASLUsername), sasl.UsernameSecretRef),
				secretEnv(flagenv.Name(names.FlagKafkaSASLPassword), sasl.PasswordSecretRef))
		}
		if o := sasl.OAuthBearer; o != nil {
			if o.TokenSecretRef != nil {
				env = append(env, value(names.FlagKafkaSASLOAuthTokenFile, kafkaSASLDir+"/token"))
			}
			if o.TokenURL != "" {
				env = append(env, value(names.FlagKafkaSASLOAuthTokenURL, o.TokenURL))
				if o.ClientIDSecretRef != nil && o.ClientSecretSecretRef != nil {
					env = append(env,
						secretEnv(flagenv.Name(names.FlagKafkaSASLOAuthClientID), o.ClientIDSecretRef),
						secretEnv(flagenv.Name(names.FlagKafkaSASLOAuthClientSecret), o.ClientSecretSecretRef))
				}
				if len(o.Scopes) > 0 {
					env = append(env, value(names.FlagKafkaSASLOAuthScopes, joinComma(o.Scopes)))
				}
			}
		}
	}
	env = append(env, secretEnv(names.EnvPostgresDSN, &ac.Spec.Postgres.DSNSecretRef))
	if es := ac.Spec.Elasticsearch; es != nil && ac.Spec.Mode == atlasv1alpha1.AtlasConsumerModeIndexer {
		env = append(env, value(names.FlagElasticsearchAddresses, joinComma(es.Addresses)))
		if es.Index != "" {
			env = append(env, value(names.FlagElasticsearchIndex, es.Index))
		}
		if es.OpenSearch {
			env = append(env, value(names.FlagElasticsearchOpenSearch, "true"))
		}
		if tls := es.TLS; tls != nil {
			if tls.CASecretRef != nil || tls.CAConfigMapRef != nil {
				env = append(env, value(names.FlagElasticsearchTLSCAFile, searchTLSDir+"/ca.crt"))
			}
			if tls.CertSecretRef != nil {
				env = append(env, value(names.FlagElasticsearchTLSCertFile, searchTLSDir+"/tls.crt"),
					value(names.FlagElasticsearchTLSKeyFile, searchTLSDir+"/tls.key"))
			}
			if tls.InsecureSkipVerify {
				env = append(env, value(names.FlagElasticsearchTLSInsecure, "true"))
			}
		}
		if ref := es.CredentialsSecretRef; ref != nil {
			for _, kv := range [][2]string{
				{names.EnvElasticsearchUsername, ElasticsearchUsernameKey},
				{names.EnvElasticsearchPassword, ElasticsearchPasswordKey},
				{names.EnvElasticsearchAPIKey, ElasticsearchAPIKeyKey},
			} {
				env = append(env, secretEnv(kv[0], &corev1.SecretKeySelector{
					LocalObjectReference: *ref, Key: kv[1], Optional: ptr.To(true)}))
			}
		}
	}
	if b := ac.Spec.Batch; b.Size != nil {
		env = append(env, value(names.FlagBatchSize, itoa(*b.Size)))
	}
	if b := ac.Spec.Batch; b.MaxWait != nil {
		env = append(env, value(names.FlagBatchWait, b.MaxWait.Duration.String()))
	}
	env = append(env,
		value(names.FlagLogLevel, logLevel(ac)),
		value(names.FlagHealthAddr, names.DefaultHealthAddr),
		value(names.FlagShutdownTimeout, names.DefaultShutdownTimeout.String()),
	)
	return env
}

func startOffset(ac *atlasv1alpha1.AtlasConsumer) string {
	if StartEarliest(ac) {
		return string(atlasv1alpha1.StartOffsetEarliest)
	}
	return string(atlasv1alpha1.StartOffsetLatest)
}

// value is the environment variable of a flag.
func value(flag, v string) corev1.EnvVar {
	return corev1.EnvVar{Name: flagenv.Name(flag), Value: v}
}

func secretEnv(name string, ref *corev1.SecretKeySelector) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref.DeepCopy()}}
}

func volumes(ac *atlasv1alpha1.AtlasConsumer) []corev1.Volume {
	vols := []corev1.Volume{{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if tls := ac.Spec.Kafka.TLS; tls != nil {
		vols = appendProjected(vols, kafkaTLSVolume,
			secretFile(tls.CASecretRef, "ca.crt"), secretFile(tls.CertSecretRef, "tls.crt"), secretFile(tls.KeySecretRef, "tls.key"))
	}
	if sasl := ac.Spec.Kafka.SASL; sasl != nil && sasl.OAuthBearer != nil {
		// a projected Secret file follows the Secret, so a rotated token is read without a restart
		vols = appendProjected(vols, kafkaSASLVolume, secretFile(sasl.OAuthBearer.TokenSecretRef, "token"))
	}
	if es := ac.Spec.Elasticsearch; es != nil && es.TLS != nil && ac.Spec.Mode == atlasv1alpha1.AtlasConsumerModeIndexer {
		tls := es.TLS
		ca := secretFile(tls.CASecretRef, "ca.crt")
		if ref := tls.CAConfigMapRef; ref != nil {
			ca = &corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: ref.LocalObjectReference,
				Items:                []corev1.KeyToPath{{Key: ref.Key, Path: "ca.crt"}},
				Optional:             ref.Optional,
			}}
		}
		vols = appendProjected(vols, searchTLSVolume, ca, secretFile(tls.CertSecretRef, "tls.crt"), secretFile(tls.KeySecretRef, "tls.key"))
	}
	return vols
}

// secretFile projects the selected Secret key as the file path (nil without a selector).
func secretFile(ref *corev1.SecretKeySelector, path string) *corev1.VolumeProjection {
	if ref == nil {
		return nil
	}
	return &corev1.VolumeProjection{Secret: &corev1.SecretProjection{
		LocalObjectReference: ref.LocalObjectReference,
		Items:                []corev1.KeyToPath{{Key: ref.Key, Path: path}},
		Optional:             ref.Optional,
	}}
}

// appendProjected adds a projected volume of the given files, when there is any.
func appendProjected(vols []corev1.Volume, name string, files ...*corev1.VolumeProjection) []corev1.Volume {
	var sources []corev1.VolumeProjection
	for _, f := range files {
		if f != nil {
			sources = append(sources, *f)
		}
	}
	if len(sources) == 0 {
		return vols
	}
	return append(vols, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: sources}}})
}

func volumeMounts(ac *atlasv1alpha1.AtlasConsumer) []corev1.VolumeMount {
	mounts := []corev1.VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}}
	for _, v := range volumes(ac) {
		switch v.Name {
		case kafkaTLSVolume:
			mounts = append(mounts, corev1.VolumeMount{Name: kafkaTLSVolume, MountPath: kafkaTLSDir, ReadOnly: true})
		case kafkaSASLVolume:
			mounts = append(mounts, corev1.VolumeMount{Name: kafkaSASLVolume, MountPath: kafkaSASLDir, ReadOnly: true})
		case searchTLSVolume:
			mounts = append(mounts, corev1.VolumeMount{Name: searchTLSVolume, MountPath: searchTLSDir, ReadOnly: true})
		}
	}
	return mounts
}
