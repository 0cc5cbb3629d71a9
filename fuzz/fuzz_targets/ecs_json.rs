//! The JSON 1.1 decoder of every ECS operation berth answers: any body is an answer
//! (a request or an error), never a panic.
#![no_main]
use berth_api::ecs::*;
use libfuzzer_sys::fuzz_target;

macro_rules! decoders {
    ($($op:ident => $shape:ident),* $(,)?) => {
        /// Decodes `body` as operation number `i`'s request (modulo their count).
        fn decode(i: usize, body: &[u8]) {
            let decoders: &[fn(&[u8])] = &[$(|b| { let _ = decode_input::<$shape>(b); }),*];
            decoders[i % decoders.len()](body)
        }
    };
}

decoders! {
    CreateCluster => CreateClusterRequest,
    DescribeClusters => DescribeClustersRequest,
    ListClusters => ListClustersRequest,
    UpdateCluster => UpdateClusterRequest,
    UpdateClusterSettings => UpdateClusterSettingsRequest,
    DeleteCluster => DeleteClusterRequest,
    PutClusterCapacityProviders => PutClusterCapacityProvidersRequest,
    RegisterTaskDefinition => RegisterTaskDefinitionRequest,
    DescribeTaskDefinition => DescribeTaskDefinitionRequest,
    ListTaskDefinitions => ListTaskDefinitionsRequest,
    ListTaskDefinitionFamilies => ListTaskDefinitionFamiliesRequest,
    DeregisterTaskDefinition => DeregisterTaskDefinitionRequest,
    DeleteTaskDefinitions => DeleteTaskDefinitionsRequest,
    TagResource => TagResourceRequest,
    UntagResource => UntagResourceRequest,
    ListTagsForResource => ListTagsForResourceRequest,
    ListAccountSettings => ListAccountSettingsRequest,
    PutAccountSetting => PutAccountSettingRequest,
    PutAccountSettingDefault => PutAccountSettingDefaultRequest,
    DeleteAccountSetting => DeleteAccountSettingRequest,
    RegisterContainerInstance => RegisterContainerInstanceRequest,
    DescribeContainerInstances => DescribeContainerInstancesRequest,
    ListContainerInstances => ListContainerInstancesRequest,
    DeregisterContainerInstance => DeregisterContainerInstanceRequest,
    UpdateContainerInstancesState => UpdateContainerInstancesStateRequest,
    DiscoverPollEndpoint => DiscoverPollEndpointRequest,
    PutAttributes => PutAttributesRequest,
    DeleteAttributes => DeleteAttributesRequest,
    ListAttributes => ListAttributesRequest,
    RunTask => RunTaskRequest,
    StartTask => StartTaskRequest,
    StopTask => StopTaskRequest,
    DescribeTasks => DescribeTasksRequest,
    ListTasks => ListTasksRequest,
    UpdateTaskProtection => UpdateTaskProtectionRequest,
    GetTaskProtection => GetTaskProtectionRequest,
    CreateService => CreateServiceRequest,
    UpdateService => UpdateServiceRequest,
    DeleteService => DeleteServiceRequest,
    DescribeServices => DescribeServicesRequest,
    ListServices => ListServicesRequest
}

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let _ = berth_api::validate::not_a_request(body);
    decode(usize::from(*first), body);
});
